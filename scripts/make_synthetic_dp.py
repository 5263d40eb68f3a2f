"""Write a synthetic dual-pixel defocus data set (see docs/synthetic_data.md).

Example: python scripts/make_synthetic_dp.py --count 8 --size 128 --seed 0 --out datasets/synthetic_dp --lmdb
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (applies the BasicSR compatibility fixes before basicsr is imported)
from dmtnet_arch.data.synthetic_dp import CameraModel, generate_dataset  # noqa: E402


def parse_size(text: str) -> tuple:
    """'128' -> (128, 128); '96x160' -> (96, 160) as height x width."""
    parts = text.lower().split('x')
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f'size must be N or HxW with positive integers, got {text!r}')
    height = int(parts[0])
    width = int(parts[-1])
    return height, width


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'must be a whole number of at least 1, got {text!r}')
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--count', type=positive_int, required=True, help='number of samples')
    parser.add_argument('--size', type=parse_size, default=(128, 128), help='N (square) or HxW, default 128')
    parser.add_argument('--seed', type=int, default=0, help='the same seed writes the same bytes')
    parser.add_argument('--out', type=Path, required=True, help='output folder')
    parser.add_argument('--sources', type=Path, default=None, help='extra folder of sharp images to use as textures')
    parser.add_argument('--noise', type=float, default=0.0, help='sensor noise std at mid-grey (0 = off, e.g. 0.01)')
    parser.add_argument('--f-number', type=float, default=CameraModel().f_number, help='larger = less blur')
    parser.add_argument('--lmdb', action='store_true', help='also write lqL/lqR/lqC/gt LMDBs for BasicSR')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def main(argv=None) -> None:
    """Generate the data set and report where it went and how long it took."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    out = generate_dataset(
        args.out,
        args.count,
        size=args.size,
        seed=args.seed,
        sources_dir=args.sources,
        noise_std=args.noise,
        camera=CameraModel(f_number=args.f_number),
        write_lmdb=args.lmdb,
        progress=not args.quiet,
    )
    print(f'wrote {args.count} samples to {out} in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
