"""Cutting DPDD scenes into overlapping training crops, ranking crops by sharpness, and writing them safely.

Used by ``scripts/prepare_dpdd.py``; the sharpness measure is defined in ``docs/data.md``.
"""

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from dmtnet_arch.data.data_util import VIEW_FOLDERS, read_sample_views
from dmtnet_arch.utils.file_util import TEMP_SUFFIX, write_bytes_atomically
from dmtnet_arch.utils.img_util import gradient_magnitude, to_float, write_png
from dmtnet_arch.utils.tile_util import window_starts

SOBEL_KERNEL_SIZES = (3, 7, 11, 15)
CROP_NAME = re.compile(r'.+_\d+_\d+\.png')


def crop_grid(height: int, width: int, crop_size: int, stride: int) -> list:
    """``(row, col, top, left)`` of every crop, row-major: every ``stride`` pixels while the crop fits, plus one crop
    anchored to the far border; an image smaller than a crop is an error."""
    if min(height, width) < crop_size:
        raise ValueError(f'image side {min(height, width)} is smaller than the crop size {crop_size}')
    tops = window_starts(height, crop_size, stride)
    lefts = window_starts(width, crop_size, stride)
    return [(row, col, top, left) for row, top in enumerate(tops) for col, left in enumerate(lefts)]


def min_max_normalise(values: np.ndarray) -> np.ndarray:
    """(v - min) / (max - min) across the crops of one image; all ones when the crops do not differ."""
    shifted = values - values.min()
    return shifted / shifted.max() if shifted.max() > 0 else np.ones_like(values)


def sharpness_scores(crops: list) -> np.ndarray:
    """Restormer's DPDD crop sharpness, relative among one image's crops: for each Sobel kernel size 3, 7, 11, 15
    the gradient-magnitude sum of each crop's gray target, min-max normalised across the crops; then the product."""
    grays = [cv2.cvtColor(to_float(crop), cv2.COLOR_RGB2GRAY).astype(np.float64) for crop in crops]
    per_size = [
        min_max_normalise(np.array([gradient_magnitude(g, k).sum() for g in grays])) for k in SOBEL_KERNEL_SIZES
    ]
    return np.prod(per_size, axis=0)


def select_sharpest(crops: list, scores: list, drop_fraction: float) -> list:
    """Drop ``floor(len * drop_fraction)`` crops with the lowest scores; keep the others in their original order."""
    if not 0 <= drop_fraction < 1:
        raise ValueError(f'drop fraction must be in [0, 1), got {drop_fraction}')
    dropped = set(np.argsort(scores, kind='stable')[: int(len(crops) * drop_fraction)].tolist())
    return [crop for index, crop in enumerate(crops) if index not in dropped]


def crop_name(image_name: str, row: int, col: int) -> str:
    """File name of one crop: ``<image>_<row>_<col>.png``."""
    return f'{image_name}_{row}_{col}.png'


def crop_sample(sample, out_dir, crop_size: int = 512, stride: int = 204, drop_fraction: float = 0.0) -> list:
    """Cut every view of one sample into aligned crops, keep the sharpest, write them; returns the crop file names."""
    images = read_sample_views(sample)
    height, width = images['target'].shape[:2]
    grid = crop_grid(height, width, crop_size, stride)
    targets = [images['target'][top : top + crop_size, left : left + crop_size] for _, _, top, left in grid]
    scores = sharpness_scores(targets) if drop_fraction else np.zeros(len(grid))
    names = []
    for row, col, top, left in select_sharpest(grid, scores, drop_fraction):
        name = crop_name(sample.name, row, col)
        for view, image in images.items():
            write_png(Path(out_dir) / VIEW_FOLDERS[view] / name, image[top : top + crop_size, left : left + crop_size])
        names.append(name)
    return names


def remove_leftovers(folder: Path, expected: set) -> int:
    """Delete temporary files and crops not written by this run (e.g. from an earlier, different run); count them."""
    removed = 0
    for path in folder.iterdir():
        is_temp = path.name.startswith('.') and path.name.endswith(TEMP_SUFFIX)
        is_stale_crop = CROP_NAME.fullmatch(path.name) is not None and path.name not in expected
        if path.is_file() and (is_temp or is_stale_crop):
            path.unlink()
            removed += 1
    return removed


# The grid a split's crops were cut on, written before the first crop so that an interrupted run says what it left.
GRID_RECORD = 'crop_grid.json'


def check_output_outside_input(out_dir: Path, input_root: Path):
    """Crops written into (or above) the source folders would mix with the sources: refuse, naming both."""
    out_dir, input_root = Path(out_dir).resolve(), Path(input_root).resolve()
    if out_dir.is_relative_to(input_root) or input_root.is_relative_to(out_dir):
        raise ValueError(
            f'output folder {out_dir} overlaps the input {input_root}: crops would be written among the source '
            'images. Choose an --out outside --input.'
        )


def start_grid(split_dir: Path, grid: dict, view_folders: list) -> int:
    """Record ``grid`` (crop size, stride, drop fraction) for ``split_dir``. Crops of another grid, or of an unknown
    one (no record), are deleted first, with the LMDBs built from them, so a folder never mixes crops cut on two
    grids, even after an interrupted run. Returns how many crop files were deleted."""
    record = Path(split_dir) / GRID_RECORD
    previous = json.loads(record.read_text()) if record.is_file() else None
    removed = 0
    if previous != grid:
        for folder in view_folders:
            if (Path(split_dir) / folder).is_dir():
                removed += remove_leftovers(Path(split_dir) / folder, set())
        for lmdb in Path(split_dir).glob('*.lmdb') if Path(split_dir).is_dir() else ():
            shutil.rmtree(lmdb)
        if removed:
            print(f'{split_dir}: removed {removed} crops cut with {previous or "an unrecorded grid"}, not {grid}')
    write_bytes_atomically(record, json.dumps(grid, indent=2).encode())
    return removed
