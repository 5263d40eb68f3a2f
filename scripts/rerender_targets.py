"""Re-blur a real dual-pixel folder's sharp targets with the synthetic generator's PSFs: real content under the
generator's degradation, to score next to the real folder (docs/synthetic_data.md, "Where the gap is").

    python scripts/rerender_targets.py ../shared/real_dp_canon --out results/rerendered
    python scripts/rerender_targets.py DIR --out OUT --jpeg-quality 40     # or --h264-crf 33 (needs PyAV)
    python scripts/rerender_targets.py DIR --out OUT --h264-crf 24 --h264-video   # the views as one video
    python scripts/rerender_targets.py DIR --out OUT --radius-map    # each block at its own measured radius
    python scripts/real_benchmark.py --weights synthetic-T --input OUT
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.synthetic_dp import PsfModel  # noqa: E402
from dmtnet_arch.tools.rerender import Rerendering, rerender_folder  # noqa: E402
from dmtnet_arch.utils.cli_util import (  # noqa: E402
    add_codec_arguments,
    check_codec_arguments,
    fraction,
    non_negative_float,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder', help='inputL/ inputR/ inputC/ target/ folder of real captures')
    parser.add_argument('--out', required=True, help='where the re-rendered folder goes (same layout)')
    radius = parser.add_mutually_exclusive_group()
    radius.add_argument(
        '--radius', type=non_negative_float, help="disc radius in px for every scene (default: each scene's median)"
    )
    radius.add_argument(
        '--radius-map',
        action='store_true',
        help="each pixel at the disc radius measured around it, signed by the views' shift (the scene's depth)",
    )
    parser.add_argument('--ramp-strength', type=fraction, default=0.7, help="the generator's PSF ramp strength")
    parser.add_argument(
        '--rim-floor', type=non_negative_float, default=PsfModel().rim_floor, help="the PSF disc's centre/rim"
    )
    parser.add_argument(
        '--psf-softness',
        type=non_negative_float,
        default=PsfModel().sigma_per_radius,
        help='PSF edge sigma per px of radius',
    )
    add_codec_arguments(parser, ranges=False, views='the 8-bit input views')
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_codec_arguments(parser, args)
    psf_model = PsfModel(ramp_strength=args.ramp_strength, rim_floor=args.rim_floor, sigma_per_radius=args.psf_softness)
    how = Rerendering(psf_model, args.radius, args.jpeg_quality, args.h264_crf, args.h264_video, args.radius_map)
    for name, radius in rerender_folder(args.folder, args.out, how).items():
        print(
            f'{name}: '
            + ('left out (no blurred textured blocks)' if radius is None else f'disc radius {radius:.1f} px')
            + (' (median of the map)' if args.radius_map and radius is not None else '')
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
