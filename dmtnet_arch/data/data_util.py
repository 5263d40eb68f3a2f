"""Pairing the views of each dual-pixel scene in the three layouts, and inputs to deblur (``docs/data.md``)."""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmtnet_arch.utils.img_util import IMAGE_SUFFIXES, bit_depth, list_images, read_image, size_text
from dmtnet_arch.utils.lmdb_util import check_keys_in_lmdb, read_meta_info_keys

VIEWS = ('left', 'right', 'target', 'combined')


# The folder layout (Restormer's, prepare_dpdd.py's and the synthetic generator's) and its per-view LMDB names.
VIEW_FOLDERS = {'left': 'inputL', 'right': 'inputR', 'target': 'target', 'combined': 'inputC'}


LMDB_NAMES = {'left': 'lqL', 'right': 'lqR', 'target': 'gt', 'combined': 'lqC'}


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


def read_sample_views(sample: DualPixelSample, views=None) -> dict:
    """The views of a sample (``views``: their names; default every view it has) as RGB arrays at their own bit depth,
    by view name, checked to share bit depth and size; errors name the files."""
    paths = {view: path for view, path in sample.views().items() if views is None or view in views}
    images = {view: read_image(path) for view, path in paths.items()}
    check_views_match({paths[view]: image for view, image in images.items()})
    return images


def identical_views(left_name: str, right_name: str, left: np.ndarray, right: np.ndarray) -> str | None:
    """Why a pair's views are unusable when they are identical pixel for pixel (the same file twice, or one view
    copied over the other): with no disparity between them the network runs, and scores worse. None otherwise."""
    if left.shape != right.shape or not np.array_equal(left, right):
        return None
    return (
        f'the left view {left_name} and the right view {right_name} are identical, pixel for pixel (the same image '
        'given twice, or one view copied over the other): there is no dual-pixel disparity to use'
    )


def list_png_names(folder, pattern: str = '*.png') -> list[str]:
    """Sorted names of the PNGs in ``folder`` that match ``pattern``; an absent folder, or none, is an error."""
    return [path.name for path in list_images(folder, ('.png',), pattern)]


def pair_folder_layout(left_dir, right_dir, target_dir, combined_dir=None, filename_tmpl: str = '{}') -> list:
    """Pair `inputL/ inputR/ target/ [inputC/]` by file name; an input stem is `filename_tmpl.format(target stem)`."""
    target_names = list_png_names(target_dir)
    stems = [Path(name).stem for name in target_names]
    input_dirs = {'left': left_dir, 'right': right_dir, 'combined': combined_dir}
    paths = {'target': [str(Path(target_dir) / name) for name in target_names]}
    for view, folder in input_dirs.items():
        if folder is not None:
            expected = [filename_tmpl.format(stem) + '.png' for stem in stems]
            check_same_names(expected, list_png_names(folder), folder, target_dir)
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
        view: [str(folder / name) for name in list_png_names(folder, pattern)]
        for view, (folder, pattern) in folders.items()
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


def index_by_scene(files: list[Path], folder, problems: list, view: str = 'image') -> dict:
    """``{scene name: file}``; a second file of the same scene is a problem (named), not a silent choice."""
    by_scene = {}
    for path in files:
        scene = scene_name(path)
        if scene in by_scene:
            problems.append(f'{by_scene[scene]} and {path}: two {view}s of scene {scene!r} in {folder}')
            continue
        by_scene[scene] = path
    return by_scene


def scenes_with_both_views(left: dict, right: dict, missing, problems: list) -> list[str]:
    """The sorted scenes that ``left`` and ``right`` (``{scene: file}``) both have. A scene with one view only is a
    problem: ``'<its file>: ' + missing(scene, view)``, where ``view`` is the absent one."""
    for scene in sorted(set(left) ^ set(right)):
        found, absent = (left[scene], 'right') if scene in left else (right[scene], 'left')
        problems.append(f'{found}: {missing(scene, absent)}')
    return sorted(set(left) & set(right))


def pair_views_by_name(left_dir, right_dir, combined_dir=None) -> tuple[list, list]:
    """Pair the files of a left-view folder and a right-view folder by scene name (the same file name, or the same
    name but for its left/right token); an optional combined-view folder is matched the same way.

    Returns ``(samples, problems)``: a view without its partner is a problem naming the file, not an error, so the
    other pairs still run."""
    problems = []
    folders = {'left': left_dir, 'right': right_dir}
    left = index_by_scene(list_images(left_dir), left_dir, problems)
    right = index_by_scene(list_images(right_dir), right_dir, problems)
    combined = index_by_scene(list_images(combined_dir), combined_dir, problems) if combined_dir else {}
    scenes = scenes_with_both_views(
        left, right, lambda scene, view: f'no image of scene {scene!r} in {folders[view]}', problems
    )
    samples = [
        DualPixelSample(scene, str(left[scene]), str(right[scene]), combined=str_or_none(combined.get(scene)))
        for scene in scenes
    ]
    if not samples and not problems:
        problems.append(f'{left_dir}, {right_dir}: no images ({", ".join(IMAGE_SUFFIXES)})')
    return samples, problems


def str_or_none(path) -> str | None:
    return None if path is None else str(path)


def pair_views_in_folder(folder) -> tuple[list, list]:
    """Pair ``*_L`` / ``*_R`` files (or ``_l``/``_r``, ``_left``/``_right``) of one folder; ``(samples, problems)``."""
    problems = []
    files = {'left': [], 'right': []}
    for path in list_images(folder):
        split = split_view_name(path.stem)
        if split is None:
            problems.append(f'{path}: not named as a left or right view (*_L, *_R, *_left, *_right); skipped')
            continue
        files[split[1]].append(path)
    left, right = (index_by_scene(files[view], folder, problems, f'{view} view') for view in ('left', 'right'))
    scenes = scenes_with_both_views(
        left, right, lambda scene, view: f'no {view} view of scene {scene!r} in {folder}', problems
    )
    samples = [DualPixelSample(s, str(left[s]), str(right[s])) for s in scenes]
    if not samples and not problems:
        problems.append(f'{folder}: no *_L / *_R image pairs ({", ".join(IMAGE_SUFFIXES)})')
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
