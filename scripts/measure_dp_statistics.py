"""Measure how the dual-pixel views' horizontal shift grows with the blur, and their brightness imbalance, on a
folder of real (or synthetic) captures in the inputL/ inputR/ inputC/ target/ layout (docs/synthetic_data.md).

    python scripts/measure_dp_statistics.py DIR
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.dp_statistics import measure_folder, report_lines  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('folder', help='inputL/ inputR/ inputC/ target/ folder')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    print('\n'.join(report_lines(*measure_folder(args.folder))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
