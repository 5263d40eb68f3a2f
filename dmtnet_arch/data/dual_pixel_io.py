"""Reading dual-pixel (DP) images at their own bit depth, pairing the views of each scene, and scene categories.

Shared by :mod:`dmtnet_arch.data.dual_pixel_dataset` and ``scripts/prepare_dpdd.py``; ``docs/data.md`` describes
the two folder layouts and the category file formats.
"""

import errno
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from basicsr.utils import scandir

from dmtnet_arch.atomic_io import DISK_FULL_ERRNOS

VIEWS = ('left', 'right', 'target', 'combined')
# The folder layout (Restormer's, prepare_dpdd.py's and the synthetic generator's) and its per-view LMDB names.
VIEW_FOLDERS = {'left': 'inputL', 'right': 'inputR', 'target': 'target', 'combined': 'inputC'}
LMDB_NAMES = {'left': 'lqL', 'right': 'lqR', 'target': 'gt', 'combined': 'lqC'}
CATEGORIES = ('indoor', 'outdoor')
SCALE_BY_DTYPE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# Inputs to deblur: lossless PNG and TIFF at 8 or 16 bit, and 8-bit JPEG (camera or video-derived views).
INPUT_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg')
# ``IMG_0001_L``, ``IMG_0001-r``, ``scene_left``: the scene name and which view the file holds.
VIEW_NAME = re.compile(r'(?P<scene>.+)[_-](?P<view>l|r|left|right)', re.IGNORECASE)


@dataclass(frozen=True)
class DualPixelSample:
    """Where the views of one scene are: file paths (disk) or keys (LMDB); ``combined`` is optional, and so is
    ``target`` for inputs to deblur (no ground truth)."""

    name: str
    left: str
    right: str
    target: str | None = None
    combined: str | None = None

    def views(self) -> dict:
        """The views this sample has, by view name, in the order of :data:`VIEWS`."""
        return {view: getattr(self, view) for view in VIEWS if getattr(self, view) is not None}


# ----------------------------------------------------------------------------------------------------------------
# Decoding


def decode_image(content: bytes, name: str) -> np.ndarray:
    """Decode image bytes at their own bit depth into an RGB HxWx3 uint8 or uint16 array; errors name ``name``."""
    if not content:
        raise ValueError(f'{name}: file is empty or missing')
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{name}: cannot be decoded as an image')
    check_rgb_layout(image, name)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_rgb_layout(image: np.ndarray, name: str):
    """Refuse anything but a 3-channel 8- or 16-bit image, naming the file."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f'{name}: grayscale image; dual-pixel views must be RGB')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{name}: {image.shape[2]}-channel image; dual-pixel views must be RGB (3 channels)')
    if image.dtype not in SCALE_BY_DTYPE:
        raise ValueError(f'{name}: pixel type {image.dtype}; only 8-bit and 16-bit images are supported')


def read_image(path) -> np.ndarray:
    """Read an image file at its own bit depth as RGB uint8/uint16 HxWx3."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    return decode_image(path.read_bytes(), str(path))


def to_float(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 (/255) or uint16 (/65535) image to float32 in [0, 1]."""
    return image.astype(np.float32) / np.float32(SCALE_BY_DTYPE[image.dtype])


def reduce_to_8bit(image: np.ndarray) -> np.ndarray:
    """A 16-bit image as OpenCV's default ``imread`` decodes its file (IFAN's reading): the top byte, v >> 8.
    8-bit images are returned unchanged."""
    return (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image


def check_views_match(images: dict):
    """Check that all views of one sample (``{file name: array}``) share bit depth and size; errors name both files."""
    (first_name, first), *others = images.items()
    for name, image in others:
        if image.dtype != first.dtype:
            raise ValueError(
                f'mixed bit depth in one sample: {first_name} is {bit_depth(first)}-bit, '
                f'{name} is {bit_depth(image)}-bit'
            )
        if image.shape != first.shape:
            raise ValueError(f'views differ in size: {first_name} is {size_text(first)}, {name} is {size_text(image)}')


def identical_views(left_name: str, right_name: str, left: np.ndarray, right: np.ndarray) -> str | None:
    """Why a pair's views are unusable when they are identical pixel for pixel (the same file twice, or one view
    copied over the other): with no disparity between them the network runs, and scores worse. None otherwise."""
    if left.shape != right.shape or not np.array_equal(left, right):
        return None
    return (
        f'the left view {left_name} and the right view {right_name} are identical, pixel for pixel (the same image '
        'given twice, or one view copied over the other): there is no dual-pixel disparity to use'
    )


def bit_depth(image: np.ndarray) -> int:
    """Bits per channel of an integer image."""
    return image.dtype.itemsize * 8


def size_text(image: np.ndarray) -> str:
    """Width x height, as image sizes are usually written."""
    return f'{image.shape[1]}x{image.shape[0]}'


# ----------------------------------------------------------------------------------------------------------------
# Pairing the views


def list_pngs(folder, pattern: str = '*.png') -> list:
    """Sorted file names in ``folder`` matching ``pattern``; an absent or empty folder is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: folder not found')
    names = sorted(name for name in scandir(str(folder), suffix='.png') if Path(name).match(pattern))
    if not names:
        raise ValueError(f'{folder}: no {pattern} images in this folder')
    return names


def pair_folder_layout(left_dir, right_dir, target_dir, combined_dir=None, filename_tmpl: str = '{}') -> list:
    """Pair `inputL/ inputR/ target/ [inputC/]` by file name; an input stem is `filename_tmpl.format(target stem)`."""
    target_names = list_pngs(target_dir)
    stems = [Path(name).stem for name in target_names]
    input_dirs = {'left': left_dir, 'right': right_dir, 'combined': combined_dir}
    paths = {'target': [str(Path(target_dir) / name) for name in target_names]}
    for view, folder in input_dirs.items():
        if folder is not None:
            expected = [filename_tmpl.format(stem) + '.png' for stem in stems]
            check_same_names(expected, list_pngs(folder), folder, target_dir)
            paths[view] = [str(Path(folder) / name) for name in expected]
    return [DualPixelSample(stem, **{view: files[i] for view, files in paths.items()}) for i, stem in enumerate(stems)]


def check_same_names(expected: list, found: list, folder, target_dir):
    """Every expected image is in ``folder`` and ``folder`` holds no image without a target; errors name both."""
    missing = sorted(set(expected) - set(found))
    if missing:
        raise FileNotFoundError(f'image {missing[0]} is missing from {folder} ({len(missing)} missing in all)')
    unmatched = sorted(set(found) - set(expected))
    if unmatched:
        raise FileNotFoundError(f'image {Path(folder) / unmatched[0]} has no target in {target_dir}')


def dpdd_folders(root, split: str) -> dict:
    """Folders and file patterns of the original DPDD layout for one split, by view name."""
    root = Path(root)
    return {
        'left': (root / f'{split}_l' / 'source', '*_L.png'),
        'right': (root / f'{split}_r' / 'source', '*_R.png'),
        'target': (root / f'{split}_c' / 'target', '*.png'),
        'combined': (root / f'{split}_c' / 'source', '*.png'),
    }


def pair_dpdd_layout(root, split: str, with_combined: bool = False) -> list:
    """Pair the original DPDD layout by sorted order within each folder; the sample name is the target's stem. The
    left, right (and combined, when its folder exists) views of one scene share a stem, so those are checked to name
    the same scenes; targets are other captures with other names and are paired by position only."""
    folders = dpdd_folders(root, split)
    if not (with_combined or folders['combined'][0].is_dir()):
        folders.pop('combined')
    files = {
        view: [str(folder / name) for name in list_pngs(folder, pattern)] for view, (folder, pattern) in folders.items()
    }
    check_same_counts({folders[view][0]: len(names) for view, names in files.items()})
    check_same_scenes({view: files[view] for view in ('left', 'right', 'combined') if view in files})
    if not with_combined:
        files.pop('combined', None)
    return [
        DualPixelSample(Path(target).stem, **{view: names[i] for view, names in files.items()})
        for i, target in enumerate(files['target'])
    ]


def check_same_counts(counts: dict):
    """Folders paired by sorted order must hold as many images each; the error lists every count."""
    if len(set(counts.values())) > 1:
        listing = ', '.join(f'{folder}: {count}' for folder, count in counts.items())
        raise ValueError(f'folders paired by sorted order hold different numbers of images ({listing})')


# the suffix each DPDD source view adds to the scene's stem
DPDD_VIEW_SUFFIXES = {'left': '_L', 'right': '_R', 'combined': ''}


def check_same_scenes(files: dict):
    """Source views paired by sorted position must name the same scene at each position (``x_L.png``, ``x_R.png``,
    ``x.png``); with one file lost and an unrelated one present the counts match but the stems do not."""
    stems = {
        view: [Path(name).stem.removesuffix(DPDD_VIEW_SUFFIXES[view]) for name in names]
        for view, names in files.items()
    }
    (first_view, first), *others = stems.items()
    for view, own in others:
        for index, (a, b) in enumerate(zip(first, own, strict=True)):
            if a != b:
                only_first = sorted(set(first) - set(own))
                only_other = sorted(set(own) - set(first))
                raise ValueError(
                    f'views paired by sorted position name different scenes: {files[first_view][index]} and '
                    f'{files[view][index]}. Scenes only among the {first_view} views: {only_first or "none"}; only '
                    f'among the {view} views: {only_other or "none"}. Every scene needs all its views.'
                )


def has_dpdd_combined(root, split: str) -> bool:
    """Whether the DPDD layout under ``root`` has the combined-view folder for ``split``."""
    return dpdd_folders(root, split)['combined'][0].is_dir()


# ----------------------------------------------------------------------------------------------------------------
# Pairing inputs to deblur (no target): every layout above, plus a folder of *_L / *_R files


def split_view_name(stem: str) -> tuple[str, str] | None:
    """``('IMG_0001', 'left')`` for ``IMG_0001_L`` (also ``_l``, ``-R``, ``_left``, ``_right``); None otherwise."""
    match = VIEW_NAME.fullmatch(stem)
    if match is None:
        return None
    return match['scene'], 'left' if match['view'].lower().startswith('l') else 'right'


def scene_name(path: Path) -> str:
    """The scene a view belongs to: its stem without a trailing left/right token."""
    split = split_view_name(path.stem)
    return split[0] if split else path.stem


def list_images(folder) -> list[Path]:
    """Sorted image files (:data:`INPUT_SUFFIXES`, any case) directly in ``folder``; an absent folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: folder not found')
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)


def index_by_scene(files: list[Path], folder, problems: list) -> dict:
    """``{scene name: file}``; a second file of the same scene is a problem (named), not a silent choice."""
    by_scene = {}
    for path in files:
        scene = scene_name(path)
        if scene in by_scene:
            problems.append(f'{by_scene[scene]} and {path}: two images of scene {scene!r} in {folder}')
            continue
        by_scene[scene] = path
    return by_scene


def pair_views_by_name(left_dir, right_dir, combined_dir=None) -> tuple[list, list]:
    """Pair the files of a left-view folder and a right-view folder by scene name (the same file name, or the same
    name but for its left/right token); an optional combined-view folder is matched the same way.

    Returns ``(samples, problems)``: a view without its partner is a problem naming the file, not an error, so the
    other pairs still run."""
    problems = []
    left = index_by_scene(list_images(left_dir), left_dir, problems)
    right = index_by_scene(list_images(right_dir), right_dir, problems)
    combined = index_by_scene(list_images(combined_dir), combined_dir, problems) if combined_dir else {}
    for scene in sorted(set(left) ^ set(right)):
        found, missing = (left[scene], right_dir) if scene in left else (right[scene], left_dir)
        problems.append(f'{found}: no image of scene {scene!r} in {missing}')
    samples = [
        DualPixelSample(scene, str(left[scene]), str(right[scene]), combined=str_or_none(combined.get(scene)))
        for scene in sorted(set(left) & set(right))
    ]
    if not samples and not problems:
        problems.append(f'{left_dir}, {right_dir}: no images ({", ".join(INPUT_SUFFIXES)})')
    return samples, problems


def str_or_none(path) -> str | None:
    return None if path is None else str(path)


def pair_views_in_folder(folder) -> tuple[list, list]:
    """Pair ``*_L`` / ``*_R`` files (or ``_l``/``_r``, ``_left``/``_right``) of one folder; ``(samples, problems)``."""
    problems = []
    views = {'left': {}, 'right': {}}
    for path in list_images(folder):
        split = split_view_name(path.stem)
        if split is None:
            problems.append(f'{path}: not named as a left or right view (*_L, *_R, *_left, *_right); skipped')
            continue
        scene, view = split
        if scene in views[view]:
            problems.append(f'{views[view][scene]} and {path}: two {view} views of scene {scene!r}')
            continue
        views[view][scene] = path
    left, right = views['left'], views['right']
    for scene in sorted(set(left) ^ set(right)):
        found, missing = (left[scene], 'right') if scene in left else (right[scene], 'left')
        problems.append(f'{found}: no {missing} view of scene {scene!r} in {folder}')
    samples = [DualPixelSample(s, str(left[s]), str(right[s])) for s in sorted(set(left) & set(right))]
    if not samples and not problems:
        problems.append(f'{folder}: no *_L / *_R image pairs ({", ".join(INPUT_SUFFIXES)})')
    return samples, problems


def find_input_pairs(root, split: str = 'test') -> tuple[str, list, list]:
    """Discover the layout of a folder of inputs and pair its views: ``(layout, samples, problems)``.

    The original DPDD layout (``<split>_l/source``, ``<split>_r/source``, optional ``<split>_c/source``), the
    per-view folder layout (``inputL/``, ``inputR/``, optional ``inputC/``), else a folder of ``*_L`` / ``*_R``
    files. Targets, when present, are not needed and not read."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'{root}: input folder not found')
    dpdd = dpdd_folders(root, split)
    if dpdd['left'][0].is_dir():
        combined = dpdd['combined'][0] if dpdd['combined'][0].is_dir() else None
        return f'DPDD ({split} split)', *pair_views_by_name(dpdd['left'][0], dpdd['right'][0], combined)
    other_splits = sorted(path.parent.name[: -len('_l')] for path in root.glob('*_l/source') if path.is_dir())
    if other_splits:
        raise FileNotFoundError(
            f'{root}: a DPDD layout without a {split!r} split ({split}_l/source); it has '
            f'{", ".join(other_splits)}: pass --split {other_splits[0]}'
        )
    folders = {view: root / name for view, name in VIEW_FOLDERS.items()}
    if folders['left'].is_dir():
        combined = folders['combined'] if folders['combined'].is_dir() else None
        return 'inputL/inputR folders', *pair_views_by_name(folders['left'], folders['right'], combined)
    return 'left/right pairs in one folder', *pair_views_in_folder(root)


# ----------------------------------------------------------------------------------------------------------------
# LMDB keys


def read_meta_info_keys(meta_info_file) -> list:
    """Keys listed in a BasicSR meta_info file: the first field of each line without its extension."""
    path = Path(meta_info_file)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: meta_info file not found')
    lines = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f'{path}: meta_info file lists no images')
    return [name.removesuffix('.png') for name in lines]


def pair_lmdb_layout(lmdb_paths: dict, meta_info_file=None, filename_tmpl: str = '{}') -> list:
    """Pair per-view LMDBs (``{view: path}``) by key; sorted target keys from ``meta_info_file`` or the target LMDB."""
    meta_info_file = meta_info_file or Path(lmdb_paths['target']) / 'meta_info.txt'
    target_keys = sorted(read_meta_info_keys(meta_info_file))
    keys = {view: [filename_tmpl.format(key) for key in target_keys] for view in lmdb_paths if view != 'target'}
    keys['target'] = target_keys
    check_keys_in_lmdb(target_keys, lmdb_paths['target'], listed_by=meta_info_file)
    for view, lmdb_path in lmdb_paths.items():
        check_keys_in_lmdb(keys[view], lmdb_path)
    return [
        DualPixelSample(key, **{view: names[i] for view, names in keys.items()}) for i, key in enumerate(target_keys)
    ]


LMDB_MAGIC = 0xBEEFC0DE
# byte offsets in an LMDB meta page (lmdb's MDB_meta after its 16-byte page header, 64-bit build)
LMDB_MAGIC_OFFSET, LMDB_PAGE_SIZE_OFFSET, LMDB_LAST_PAGE_OFFSET = 16, 40, 136


def check_lmdb_data_file(lmdb_path):
    """``data.mdb`` must be an LMDB file holding every page its newest meta page counts. A truncated one would be
    memory-mapped and kill the process with a bus error at the first read past its end; refuse it, naming it."""
    data = Path(lmdb_path) / 'data.mdb'
    if not data.is_file():
        raise FileNotFoundError(f'{data}: LMDB data file not found')
    size = data.stat().st_size
    with data.open('rb') as file:
        head = file.read(LMDB_LAST_PAGE_OFFSET + 16)
        if len(head) < LMDB_LAST_PAGE_OFFSET + 16 or struct.unpack_from('<I', head, LMDB_MAGIC_OFFSET)[0] != LMDB_MAGIC:
            raise ValueError(f'{data}: not an LMDB data file (empty, truncated or another format)')
        page_size = struct.unpack_from('<I', head, LMDB_PAGE_SIZE_OFFSET)[0]
        file.seek(page_size)
        second = file.read(LMDB_LAST_PAGE_OFFSET + 16)
    metas = [
        struct.unpack_from('<QQ', page, LMDB_LAST_PAGE_OFFSET) for page in (head, second) if len(page) == len(head)
    ]
    last_page, _ = max(metas, key=lambda meta: meta[1])  # the meta page of the newest transaction
    needed = (last_page + 1) * page_size
    if size < needed:
        raise ValueError(f'{data}: LMDB file is truncated ({size} bytes, its index needs {needed}); rebuild it')


def check_keys_in_lmdb(keys: list, lmdb_path, listed_by=None):
    """Every key must be listed in the LMDB's own meta_info.txt; the error names the key and the LMDB, and blames
    ``listed_by`` (the meta_info file the keys were read from) when given. Its data file is checked to be complete
    first."""
    check_lmdb_data_file(lmdb_path)
    available = set(read_meta_info_keys(Path(lmdb_path) / 'meta_info.txt'))
    missing = [key for key in keys if key not in available]
    if missing and listed_by is not None:
        raise ValueError(
            f'{listed_by}: lists key {missing[0]!r} ({len(missing)} keys in all) that the target LMDB {lmdb_path} '
            'does not hold: is it the meta_info file of these LMDBs?'
        )
    if missing:
        raise ValueError(f'key {missing[0]!r} is not in {lmdb_path} ({len(missing)} keys missing in all)')


# ----------------------------------------------------------------------------------------------------------------
# Scene categories


def load_categories(path, names: list) -> list:
    """Category ('indoor' or 'outdoor') of each image in ``names`` (the name-sorted sample list) from a label file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: category file not found')
    if path.suffix == '.npy':
        return categories_from_npy(path, len(names))
    return categories_from_text(path, names)


def category_named_by(path: Path) -> str:
    """The category a label file's name announces: 'outdoor' if the name says so, else 'indoor'."""
    return 'outdoor' if 'outdoor' in path.name.lower() else 'indoor'


def other_category(category: str) -> str:
    """'indoor' <-> 'outdoor'."""
    return CATEGORIES[1 - CATEGORIES.index(category)]


def categories_from_npy(path: Path, count: int) -> list:
    """Restormer's ``indoor_labels.npy``/``outdoor_labels.npy``: 1-based indices; a sibling file is used too."""
    category = category_named_by(path)
    labels = {category: npy_indices(path, count)}
    sibling = path.with_name(path.name.lower().replace(category, other_category(category)))
    if sibling.name != path.name.lower() and sibling.is_file():
        labels[other_category(category)] = npy_indices(sibling, count)
    return assign_categories(labels, count, path)


def npy_indices(path: Path, count: int) -> list:
    """0-based indices from a file of 1-based indices; out-of-range values are an error naming the file."""
    values = np.load(path).astype(np.int64).ravel()
    bad = values[(values < 1) | (values > count)]
    if bad.size:
        raise ValueError(f'{path}: 1-based label {int(bad[0])} is out of range for {count} images')
    return [int(value) - 1 for value in values]


def assign_categories(labels: dict, count: int, source) -> list:
    """One category per image from ``{category: indices}``: one list labels the rest with the other category;
    both lists must label every image exactly once."""
    listed = {category: set(indices) for category, indices in labels.items() if indices}
    if not listed:
        raise ValueError(f'{source}: no image is labelled')
    if len(listed) == 2:
        check_partition(listed['indoor'], listed['outdoor'], count, source)
    (category, indices), *_ = listed.items()
    categories = [other_category(category)] * count
    for index in indices:
        categories[index] = category
    return categories


def check_partition(indoor: set, outdoor: set, count: int, source):
    """Indoor and outdoor labels must not overlap and must together cover all ``count`` images."""
    both = indoor & outdoor
    if both:
        raise ValueError(f'{source}: image {min(both)} is labelled both indoor and outdoor')
    if len(indoor) + len(outdoor) != count:
        raise ValueError(
            f'{source}: {len(indoor)} indoor + {len(outdoor)} outdoor labels, but the dataset has {count} images'
        )


def categories_from_text(path: Path, names: list) -> list:
    """Text label file (format in docs/data.md): ``[category] items`` lines, 0-based indices, ranges or names."""
    labels = {category: [] for category in CATEGORIES}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split('#', 1)[0].replace(',', ' ').split()
        if not fields:
            continue
        where = f'{path}:{line_number}'
        if fields[0].lower() == 'images':
            check_declared_count(fields, len(names), where)
            continue
        category = fields.pop(0).lower() if fields[0].lower() in CATEGORIES else category_named_by(path)
        labels[category] += [index for item in fields for index in parse_item(item, names, where)]
    return assign_categories(labels, len(names), path)


def check_declared_count(fields: list, count: int, where: str):
    """An ``images N`` line must match the number of images in the dataset."""
    if len(fields) != 2 or not fields[1].isdigit():
        raise ValueError(f'{where}: expected "images <count>"')
    if int(fields[1]) != count:
        raise ValueError(f'{where}: file describes {fields[1]} images but the dataset has {count}')


def parse_item(item: str, names: list, where: str) -> list:
    """0-based indices of one item: ``N``, an inclusive range ``A-B``, or an image name (stem or file name)."""
    match = re.fullmatch(r'(\d+)(?:-(\d+))?', item)
    if match is None:
        return [index_of_name(item, names, where)]
    first, last = int(match[1]), int(match[2] or match[1])
    if last < first or last >= len(names):
        raise ValueError(f'{where}: 0-based index {item} is out of range for {len(names)} images')
    return list(range(first, last + 1))


def index_of_name(item: str, names: list, where: str) -> int:
    """Position of an image name (stem or file name) in the sample list."""
    stems = [Path(name).stem for name in names]
    wanted = Path(item).stem if item.lower().endswith('.png') else item
    if wanted not in stems:
        raise ValueError(f'{where}: image {item!r} is not in the dataset')
    return stems.index(wanted)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT, as an OSError or in the message of an error that wraps it (LMDB's)."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    return any(os.strerror(code) in str(error) for code in DISK_FULL_ERRNOS)


def write_view_lmdb(view_dir: Path, lmdb_path: Path, names: list):
    """One view's PNGs into an LMDB through BasicSR's maker (16-bit PNGs stay 16-bit), keyed by file stem, built
    under a temporary name and renamed. The map size is set from the files: BasicSR's estimate from the first
    image is too small when PNGs compress unevenly (MapFullError)."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    temp = lmdb_path.with_name(f'.{lmdb_path.stem}.partial.lmdb')
    shutil.rmtree(temp, ignore_errors=True)
    map_size = 3 * sum((view_dir / name).stat().st_size for name in names) + (64 << 20)
    keys = [Path(name).stem for name in names]
    try:
        make_lmdb_from_imgs(str(view_dir), str(temp), names, keys, map_size=map_size)
    except Exception as error:
        shutil.rmtree(temp, ignore_errors=True)
        if is_disk_full(error):
            raise OSError(
                errno.ENOSPC, f'{lmdb_path}: disk full ({error}) while writing it; free some space or write elsewhere'
            ) from error
        raise
    shutil.rmtree(lmdb_path, ignore_errors=True)
    temp.replace(lmdb_path)
