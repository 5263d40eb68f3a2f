"""BasicSR dataset of dual-pixel scenes: left and right views in, the all-in-focus target out (see docs/data.md)."""

import os
import random
import warnings

import numpy as np
import torch
from basicsr.utils import FileClient
from basicsr.utils.registry import DATASET_REGISTRY

from dmtnet_arch.data.categories import load_categories
from dmtnet_arch.data.data_util import (
    check_views_match,
    identical_views,
    pair_dpdd_layout,
    pair_folder_layout,
    pair_lmdb_layout,
)
from dmtnet_arch.utils.img_util import decode_image, img2tensor, reduce_to_8bit, to_float
from dmtnet_arch.utils.options import Option

ROOT_OPTIONS = {'left': 'dataroot_lqL', 'right': 'dataroot_lqR', 'target': 'dataroot_gt', 'combined': 'dataroot_lqC'}
PATH_OPTIONS = (*ROOT_OPTIONS.values(), 'dataroot_dpdd', 'meta_info_file', 'category_file')
ROTATION_WARNING = (
    'use_rot is on: a 90-degree rotation turns the horizontal dual-pixel disparity vertical, which real DP images '
    'never show; train with it only on purpose'
)


@DATASET_REGISTRY.register()
class DualPixelDataset(torch.utils.data.Dataset):
    """Left/right dual-pixel views (``lq``, 6 channels: left RGB then right RGB) paired with a sharp target (``gt``)."""

    # the keys this dataset reads (docs/data.md); BasicSR's loader keys are added by dmtnet_arch.utils.options
    option_schema = {
        **{key: Option(str) for key in ROOT_OPTIONS.values()},
        'dataroot_dpdd': Option(str),
        'split': Option(str),
        'use_combined': Option(bool),
        'io_backend': Option(dict),
        'meta_info_file': Option(str),
        'filename_tmpl': Option(str),
        'category_file': Option(str),
        'gt_size': Option(int, minimum=1),
        'use_hflip': Option(bool),
        'use_vflip': Option(bool),
        'use_rot': Option(bool),
        'bit_depth': Option(int, choices=(8,)),
    }

    def __init__(self, opt: dict):
        super().__init__()
        for key in PATH_OPTIONS:  # BasicSR's parse_options expands ~ in dataroot_gt only
            if isinstance(opt.get(key), str):
                opt[key] = os.path.expanduser(opt[key])
        self.opt = opt
        self.io_options = dict(opt.get('io_backend', {'type': 'disk'}))
        self.backend = self.io_options.pop('type', 'disk')
        self.is_training = opt.get('phase', 'test') == 'train'
        self.gt_size = opt.get('gt_size')
        if self.is_training and not self.gt_size:
            raise ValueError('DualPixelDataset: gt_size is required when phase is train')
        self.bit_depth = opt.get('bit_depth')
        if self.bit_depth not in (None, 8):
            raise ValueError(
                f'DualPixelDataset: bit_depth must be 8 or absent (each file its own), got {self.bit_depth!r}'
            )
        if opt.get('use_rot', False):
            warnings.warn(ROTATION_WARNING, stacklevel=2)
        self.samples = self.find_samples()
        self.categories = self.find_categories()
        self.file_client = None

    def find_samples(self) -> list:
        """Pair the views from the options: per-view folders or LMDBs, or the original DPDD layout."""
        opt = self.opt
        tmpl = opt.get('filename_tmpl', '{}')
        if opt.get('dataroot_dpdd'):
            if self.backend != 'disk':
                raise ValueError('DualPixelDataset: dataroot_dpdd needs io_backend type disk')
            if not opt.get('split'):
                raise ValueError('DualPixelDataset: dataroot_dpdd needs split (train, val or test)')
            return pair_dpdd_layout(opt['dataroot_dpdd'], opt['split'], with_combined=opt.get('use_combined', False))
        roots = {view: opt[key] for view, key in ROOT_OPTIONS.items() if opt.get(key)}
        missing = [ROOT_OPTIONS[view] for view in ('left', 'right', 'target') if view not in roots]
        if missing:
            raise ValueError(f'DualPixelDataset: missing options {missing} (or give dataroot_dpdd and split)')
        if self.backend == 'lmdb':
            self.io_options['db_paths'] = list(roots.values())
            self.io_options['client_keys'] = list(roots)
            return pair_lmdb_layout(roots, opt.get('meta_info_file'), tmpl)
        return pair_folder_layout(roots['left'], roots['right'], roots['target'], roots.get('combined'), tmpl)

    def find_categories(self):
        """Scene category of each sample from ``category_file``, or None without one."""
        category_file = self.opt.get('category_file')
        if not category_file:
            return None
        return load_categories(category_file, [sample.name for sample in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        images = self.read_views(sample)
        if self.is_training:
            images = augment(random_crop(images, self.gt_size, sample.target), self.opt)
        item = {
            'lq': to_tensor(np.concatenate([images['left'], images['right']], axis=2)),
            'gt': to_tensor(images['target']),
            'lq_path': sample.left,
            'gt_path': sample.target,
            'name': sample.name,
        }
        if 'combined' in images:
            item['lqC'] = to_tensor(images['combined'])
        if self.categories is not None:
            item['category'] = self.categories[index]
        return item

    def read_views(self, sample) -> dict:
        """Every view of a sample at its own bit depth (uint8 or uint16 RGB), checked to match; 8-bit if bit_depth 8."""
        if self.file_client is None:
            self.file_client = FileClient(self.backend, **self.io_options)
        locations = sample.views()
        images = {
            view: decode_image(self.read_bytes(view, where), self.describe(view, where))
            for view, where in locations.items()
        }
        check_views_match({self.describe(view, locations[view]): image for view, image in images.items()})
        self.check_views_differ(images, locations)
        if self.bit_depth == 8:
            images = {view: reduce_to_8bit(image) for view, image in images.items()}
        return images

    def check_views_differ(self, images: dict, locations: dict):
        """Identical left and right views are an error naming both and the options that point at them."""
        problem = identical_views(
            self.describe('left', locations['left']),
            self.describe('right', locations['right']),
            images['left'],
            images['right'],
        )
        if problem:
            where = 'dataroot_dpdd' if self.opt.get('dataroot_dpdd') else 'dataroot_lqL and dataroot_lqR'
            raise ValueError(f'DualPixelDataset ({self.opt.get("name")}): {problem}. Check {where}.')

    def read_bytes(self, view: str, where: str) -> bytes:
        """Raw bytes of one view: a file on disk or a key of that view's LMDB."""
        if self.backend != 'lmdb':
            return self.file_client.get(where)
        content = self.file_client.get(where, view)
        if content is None:
            raise ValueError(f'key {where!r} is not in {self.describe(view, where)}')
        return content

    def describe(self, view: str, where: str) -> str:
        """How errors name one view of a sample: its path, or its key and LMDB."""
        if self.backend == 'lmdb':
            return f'{where} in {self.opt[ROOT_OPTIONS[view]]}'
        return where


def random_crop(images: dict, size: int, name: str = 'image') -> dict:
    """One random ``size`` x ``size`` crop at the same offset in every view. A smaller image is refused: padding it
    would fill most of the crop with made-up content (and a reflection mirrors the dual-pixel disparity)."""
    height, width = images['target'].shape[:2]
    if height < size or width < size:
        raise ValueError(
            f'{name}: image is {width}x{height}, smaller than the training crop gt_size {size}; lower gt_size to at '
            f'most {min(height, width)} or leave this image out'
        )
    top = random.randint(0, height - size)
    left = random.randint(0, width - size)
    return {view: image[top : top + size, left : left + size] for view, image in images.items()}


def augment(images: dict, opt: dict) -> dict:
    """Random flips (a horizontal flip also swaps left and right) and, only if use_rot, a transpose."""
    if opt.get('use_hflip', False) and random.random() < 0.5:
        images = flip_horizontally(images)
    if opt.get('use_vflip', False) and random.random() < 0.5:
        images = {view: image[::-1] for view, image in images.items()}
    if opt.get('use_rot', False) and random.random() < 0.5:
        images = {view: image.transpose(1, 0, 2) for view, image in images.items()}
    return images


def flip_horizontally(images: dict) -> dict:
    """Mirror every view; the mirrored left view is what the right photodiodes would see, so swap them."""
    mirrored = {view: image[:, ::-1] for view, image in images.items()}
    mirrored['left'], mirrored['right'] = mirrored['right'], mirrored['left']
    return mirrored


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC uint8/uint16 array to a CxHxW float32 tensor in [0, 1]."""
    return img2tensor(to_float(image))
