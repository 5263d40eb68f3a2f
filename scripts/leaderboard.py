"""Leaderboard of models in the DPDD table format: leaderboard.md, leaderboard.csv and psnr_vs_params.png.

    python scripts/leaderboard.py -opt options/test_DMTNet_B.yml -opt options/test_Restormer_DP.yml --out DIR \
        [--published] [--speed-size 1120x1680 [--bf16]]

Each option file is a test option file (as for dmtnet_arch/test.py); a model whose weights are missing is tested
with its initial weights and marked untrained. See docs/leaderboard.md.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.leaderboard import run_leaderboard  # noqa: E402
from dmtnet_arch.utils.cli_util import parse_size  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', action='append', required=True, help='a test option file; repeat for more models')
    parser.add_argument('--out', required=True, type=Path, help='folder for the leaderboard files')
    parser.add_argument('--published', action='store_true', help="add the DMTNet paper's Table 1 rows")
    parser.add_argument('--speed-size', type=parse_size, help='also time model.test() at HEIGHTxWIDTH, e.g. 1120x1680')
    parser.add_argument('--bf16', action='store_true', help='that timing under bf16 autocast (GPU)')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run_leaderboard(
        args.opt,
        args.out,
        published=args.published,
        command=' '.join(['python scripts/leaderboard.py', *(sys.argv[1:] if argv is None else argv)]),
        speed_size=args.speed_size,
        bf16=args.bf16,
    )
    print(f'written: {args.out / "leaderboard.md"}, {args.out / "leaderboard.csv"}, {args.out / "psnr_vs_params.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
