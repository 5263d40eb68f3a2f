"""Leaderboard of models in the DPDD table format: leaderboard.md, leaderboard.csv and psnr_vs_params.png.

    python scripts/leaderboard.py -opt options/test_DMTNet_B.yml -opt options/test_Restormer_DP.yml --out DIR \
        [--published] [--speed-size 1120x1680 [--bf16]]

Each option file is a test option file (as for dmtnet_arch/test.py); a model whose weights are missing is tested
with its initial weights and marked untrained. See docs/leaderboard.md.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's plugin

from dmtnet_arch.tools.leaderboard import parse_size, run_leaderboard  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', action='append', required=True, help='a test option file; repeat for more models')
    parser.add_argument('--out', required=True, type=Path, help='folder for the leaderboard files')
    parser.add_argument('--published', action='store_true', help="add the DMTNet paper's Table 1 rows")
    parser.add_argument('--speed-size', type=parse_size, help='also time model.test() at HEIGHTxWIDTH, e.g. 1120x1680')
    parser.add_argument('--bf16', action='store_true', help='that timing under bf16 autocast (GPU)')
    args = parser.parse_args()
    run_leaderboard(
        args.opt,
        args.out,
        published=args.published,
        command='python scripts/' + ' '.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        speed_size=args.speed_size,
        bf16=args.bf16,
    )
    print(f'written: {args.out / "leaderboard.md"}, {args.out / "leaderboard.csv"}, {args.out / "psnr_vs_params.png"}')


if __name__ == '__main__':
    main()
