"""Cut DPDD scenes into 512 x 512 training crops (stride 204, 60% overlap), optionally dropping the least sharp ones.

Reads either layout (``--layout folder``: ``inputL/ inputR/ target/ [inputC/]``; ``--layout dpdd``: the original
``{split}_c/ {split}_l/ {split}_r/`` folders) and writes ``<out>/<split>/{inputL,inputR,target[,inputC]}/`` with
crops named ``<image>_<row>_<col>.png`` at the source bit depth, plus per-view LMDBs with ``--lmdb``.
Every file is written under a temporary name and renamed, so an interrupted run leaves no half-written file, and a
re-run replaces the previous output of that split; ``<out>/<split>/crop_grid.json`` records the grid, and crops cut
on another grid are deleted before the first new one is written. An --out that overlaps --input is refused. Example::

    python scripts/prepare_dpdd.py --input datasets/DPDD --layout dpdd --split train --out datasets/DPDD_crops \\
        --drop-blurry 0.3 --workers 8 --lmdb
"""

import argparse
import functools
import multiprocessing
import sys
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.data_util import (  # noqa: E402
    LMDB_NAMES,
    VIEW_FOLDERS,
    has_dpdd_combined,
    pair_dpdd_layout,
    pair_folder_layout,
)
from dmtnet_arch.data.dpdd_crops import check_output_outside_input, crop_sample, remove_leftovers, start_grid  # noqa: E402
from dmtnet_arch.utils.lmdb_util import write_view_lmdb  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', required=True, type=Path, help='dataset root')
    parser.add_argument('--layout', required=True, choices=('folder', 'dpdd'))
    parser.add_argument('--split', nargs='+', default=['train'], help='one or more splits, e.g. train val')
    parser.add_argument('--out', required=True, type=Path)
    parser.add_argument('--crop-size', type=int, default=512)
    parser.add_argument('--stride', type=int, default=204)
    parser.add_argument('--drop-blurry', type=float, default=0.0, metavar='FRACTION', help='drop this share per image')
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--lmdb', action='store_true', help='also write lqL.lmdb, lqR.lmdb, gt.lmdb [, lqC.lmdb]')
    return parser


def folder_layout_root(input_root: Path, split: str, splits: list) -> Path:
    """Folder layout: the views live in ``<input>/<split>/`` if it exists, else in ``<input>/`` (one split only)."""
    if (input_root / split).is_dir():
        return input_root / split
    if len(splits) > 1:
        raise FileNotFoundError(f'{input_root / split}: folder not found (needed when several splits are given)')
    return input_root


def find_samples(args: argparse.Namespace, split: str) -> list:
    """Samples of one split in the chosen layout."""
    if args.layout == 'dpdd':
        return pair_dpdd_layout(args.input, split, with_combined=has_dpdd_combined(args.input, split))
    root = folder_layout_root(args.input, split, args.split)
    combined = root / 'inputC' if (root / 'inputC').is_dir() else None
    return pair_folder_layout(root / 'inputL', root / 'inputR', root / 'target', combined)


def crop_split(args: argparse.Namespace, samples: list, split_dir: Path) -> list:
    """Write the crops of every sample (in parallel with ``--workers``); returns the names of all crops."""
    views = samples[0].views()
    grid = {'crop_size': args.crop_size, 'stride': args.stride, 'drop_blurry': args.drop_blurry}
    start_grid(split_dir, grid, list(VIEW_FOLDERS.values()))
    for view in views:
        (split_dir / VIEW_FOLDERS[view]).mkdir(parents=True, exist_ok=True)
    job = functools.partial(
        crop_sample, out_dir=split_dir, crop_size=args.crop_size, stride=args.stride, drop_fraction=args.drop_blurry
    )
    names = []
    progress = tqdm(total=len(samples), unit='image', desc=split_dir.name)
    if args.workers > 1:
        with multiprocessing.Pool(args.workers) as pool:
            for crop_names in pool.imap_unordered(job, samples):
                names += crop_names
                progress.update()
    else:
        for sample in samples:
            names += job(sample)
            progress.update()
    progress.close()
    for view in views:
        remove_leftovers(split_dir / VIEW_FOLDERS[view], set(names))
    return sorted(names)


def prepare_split(args: argparse.Namespace, split: str) -> int:
    """Crop one split (and build its LMDBs); returns how many crops it produced."""
    samples = find_samples(args, split)
    split_dir = args.out / split
    names = crop_split(args, samples, split_dir)
    if args.lmdb:
        for view in samples[0].views():
            write_view_lmdb(split_dir / VIEW_FOLDERS[view], split_dir / f'{LMDB_NAMES[view]}.lmdb', names)
    print(f'{split}: {len(names)} crops from {len(samples)} images in {split_dir}')
    return len(names)


def prepare(argv=None) -> dict:
    """Prepare every requested split; returns the number of crops per split."""
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise SystemExit('--workers must be at least 1')
    if not 0 <= args.drop_blurry < 1:
        raise SystemExit('--drop-blurry must be in [0, 1)')
    if args.crop_size < 1 or args.stride < 1:
        raise SystemExit('--crop-size and --stride must be at least 1')
    for split in args.split:
        check_output_outside_input(args.out / split, args.input)
    return {split: prepare_split(args, split) for split in args.split}


def main(argv=None) -> int:
    prepare(argv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
