"""Measure how the dual-pixel views' horizontal shift grows with the blur, and their brightness imbalance, on a
folder of real (or synthetic) captures in the inputL/ inputR/ inputC/ target/ layout (docs/synthetic_data.md).

    python scripts/measure_dp_statistics.py DIR
    python scripts/measure_dp_statistics.py DIR --psf-shape   # also fit the generator's PSF shape
    python scripts/measure_dp_statistics.py DIR --compression # also estimate the inputs' JPEG-equivalent quality
    python scripts/measure_dp_statistics.py DIR --compression h264   # ... or their H.264-equivalent CRF
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.synthetic_dp import PsfModel  # noqa: E402
from dmtnet_arch.tools.dp_statistics import (  # noqa: E402
    CODECS,
    CompressionEstimates,
    KernelGroups,
    measure_folder,
    psf_shape_lines,
    report_lines,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder', help='inputL/ inputR/ inputC/ target/ folder')
    parser.add_argument(
        '--psf-shape',
        action='store_true',
        help="fit the generator's PSF shape (rim floor, softening, ramp strength) to kernels measured behind focus",
    )
    parser.add_argument(
        '--compression',
        nargs='?',
        const='jpeg',
        choices=sorted(CODECS),
        help='estimate per scene the JPEG quality (or H.264 CRF: h264) at which the generator renders views as '
        'consistent with the combined view as these are (8-bit scenes)',
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    kernel_groups = KernelGroups() if args.psf_shape else None
    compression = CompressionEstimates(args.compression) if args.compression else None
    collectors = [c for c in (kernel_groups, compression) if c is not None]
    print('\n'.join(report_lines(*measure_folder(args.folder, *collectors))))
    if compression is not None:
        print('\n'.join(compression.lines()))
    if kernel_groups is not None:
        earlier = PsfModel(ramp_strength=0.7)  # the bright-rim shape of rows B-F in docs/synthetic_data.md
        print('\n'.join(psf_shape_lines(kernel_groups, reference=earlier)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
