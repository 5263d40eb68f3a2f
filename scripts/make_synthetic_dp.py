"""Write a synthetic dual-pixel defocus data set (see docs/synthetic_data.md).

Example: python scripts/make_synthetic_dp.py --count 8 --size 128 --seed 0 --out datasets/synthetic_dp --lmdb
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.synthetic_dp import (  # noqa: E402
    CameraModel,
    CameraPipeline,
    ContentModel,
    PsfModel,
    SceneRanges,
    generate_dataset,
)
from dmtnet_arch.utils.cli_util import (  # noqa: E402
    add_codec_arguments,
    check_codec_arguments,
    fraction,
    non_negative_float,
    parse_size,
    positive_float,
    positive_int,
    positive_range,
)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--count', type=positive_int, required=True, help='number of samples')
    parser.add_argument('--size', type=parse_size, default=(128, 128), help='N (square) or HxW, default 128')
    parser.add_argument('--seed', type=int, default=0, help='the same seed writes the same bytes')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--sources', type=Path, default=None, help='extra folder of sharp images to use as textures')
    parser.add_argument(
        '--noise', type=fraction, default=0.0, help='sensor noise std at mid-grey, in [0, 1] (0 = off, e.g. 0.01)'
    )
    parser.add_argument('--f-number', type=positive_float, default=CameraModel().f_number, help='larger = less blur')
    realism = (  # (flag, type, default, help): the options chosen by measuring real captures (docs/synthetic_data.md)
        (
            '--dead-leaves',
            fraction,
            ContentModel().dead_leaves_probability,
            'probability that a layer is procedural dead-leaves content instead of a photograph',
        ),
        (
            '--ramp-strength',
            fraction,
            PsfModel().ramp_strength,
            'left/right split of the DP PSF: 1 = full linear ramp; lower = less disparity per px of blur',
        ),
        (
            '--rim-floor',
            non_negative_float,
            PsfModel().rim_floor,
            "the PSF disc's centre brightness relative to its rim: <1 bright rim, 1 flat, >1 bright centre",
        ),
        (
            '--psf-softness',
            non_negative_float,
            PsfModel().sigma_per_radius,
            'Gaussian softening of the PSF disc edge, in px of sigma per px of radius (plus 0.5 px)',
        ),
        (
            '--psf-variation',
            fraction,
            PsfModel().shape_variation,
            'per sample, scale the ramp strength, rim floor and softening by a factor in [1 - V, 1 + V]',
        ),
        (
            '--focus-on-foreground',
            fraction,
            SceneRanges().focus_on_foreground_probability,
            'probability that autofocus picks a foreground object rather than any pixel',
        ),
        (
            '--focus-on-scene',
            fraction,
            SceneRanges().focus_on_scene_probability,
            'probability that autofocus picks a visible point of the scene; otherwise the focus is drawn from '
            '--random-focus',
        ),
        (
            '--focus-on-nearest',
            fraction,
            SceneRanges().focus_on_nearest_probability,
            'probability that autofocus picks the nearest visible point, so that nothing visible is in front of the '
            'focal plane (before the other focus options)',
        ),
        (
            '--random-focus',
            positive_range('--random-focus'),
            SceneRanges().random_focus_inverse_depth,
            'LOW-HIGH: the range (dioptres, 1/m, above 0) of a focus not set on the scene',
        ),
        (
            '--view-gain-gradient',
            non_negative_float,
            CameraPipeline().view_gain_gradient,
            'largest left/right brightness gradient across the frame (drawn in +-this per sample)',
        ),
    )
    for flag, kind, default, text in realism:
        parser.add_argument(flag, type=kind, default=default, help=text)
    parser.add_argument(
        '--linear-light',
        action=argparse.BooleanOptionalAction,
        default=CameraPipeline().linear_light,
        help='render and add noise in linear light, then apply a gamma 2.2 tone curve',
    )
    parser.add_argument(
        '--bits',
        type=int,
        choices=(8, 16),
        default=CameraPipeline().bits,
        help='quantise the input views to 8 bits (files stay 16-bit; the target stays clean)',
    )
    add_codec_arguments(parser, ranges=True)
    parser.add_argument('--lmdb', action='store_true', help='also write lqL/lqR/lqC/gt LMDBs for BasicSR')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def main(argv=None) -> int:
    """Generate the data set and report where it went and how long it took."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_codec_arguments(parser, args)
    start = time.perf_counter()
    out = generate_dataset(
        args.out,
        args.count,
        size=args.size,
        seed=args.seed,
        sources_dir=args.sources,
        noise_std=args.noise,
        camera=CameraModel(f_number=args.f_number),
        psf_model=PsfModel(
            ramp_strength=args.ramp_strength,
            rim_floor=args.rim_floor,
            sigma_per_radius=args.psf_softness,
            shape_variation=args.psf_variation,
        ),
        content=ContentModel(dead_leaves_probability=args.dead_leaves),
        scene=SceneRanges(
            random_focus_inverse_depth=args.random_focus,
            focus_on_scene_probability=args.focus_on_scene,
            focus_on_foreground_probability=args.focus_on_foreground,
            focus_on_nearest_probability=args.focus_on_nearest,
        ),
        pipeline=CameraPipeline(
            linear_light=args.linear_light,
            view_gain_gradient=args.view_gain_gradient,
            bits=8 if args.jpeg_quality or args.h264_crf else args.bits,
            jpeg_quality=args.jpeg_quality,
            h264_crf=args.h264_crf,
            h264_video=args.h264_video,
        ),
        write_lmdb=args.lmdb,
        progress=not args.quiet,
    )
    print(f'wrote {args.count} samples to {out} in {time.perf_counter() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
