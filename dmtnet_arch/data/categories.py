"""Scene categories (indoor / outdoor) of a test set, from a text or ``.npy`` file (``docs/data.md``)."""

import re
from pathlib import Path

import numpy as np

CATEGORIES = ('indoor', 'outdoor')


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
