"""DualPixelDataset and its I/O helpers: bit depth, pairing of both layouts, LMDB, aligned crops, flips, errors."""

import random
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

import dmtnet_arch  # noqa: F401  (registers DualPixelDataset)
from dmtnet_arch.data.categories import load_categories
from dmtnet_arch.data.data_util import pair_dpdd_layout
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.utils.img_util import read_image, write_image
from tests.helpers import SIZE, make_data, random_rgb, train_options

HEIGHT, WIDTH = 40, 56
NAMES = ('a', 'b', 'c')
FOLDERS = {'left': 'inputL', 'right': 'inputR', 'target': 'target', 'combined': 'inputC'}
VIEW_IDS = {'left': 1, 'right': 2, 'target': 3, 'combined': 4}


DEFAULT_DPDD_TEST_CATEGORIES = Path(__file__).resolve().parents[2] / 'datasets' / 'dpdd_test_categories.txt'


def write_png(path, rgb):
    """Write an RGB array (uint8 or uint16) as PNG, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)


def coordinate_image(view, image_index=0, height=HEIGHT, width=WIDTH):
    """16-bit image whose pixels encode x (channel 0), y (channel 1) and view/image id (channel 2)."""
    y, x = np.mgrid[0:height, 0:width]
    ident = np.full_like(x, VIEW_IDS[view] * 10000 + image_index * 100 + 11)
    return np.stack([x * 1000 + 7, y * 1000 + 3, ident], axis=2).astype(np.uint16)


def decode_coordinates(chw):
    """(x, y, id) integer maps back from a 3xHxW float tensor made from a coordinate image."""
    values = np.rint(chw.numpy() * 65535).astype(np.int64)
    return (values[0] - 7) // 1000, (values[1] - 3) // 1000, values[2]


def make_folder_layout(root, with_combined=True, names=NAMES):
    """Folder layout with one coordinate image per view and name."""
    views = [view for view in FOLDERS if with_combined or view != 'combined']
    for index, name in enumerate(names):
        for view in views:
            write_png(root / FOLDERS[view] / f'{name}.png', coordinate_image(view, index))
    return root


def folder_opt(root, **extra):
    """Options of a folder-layout dataset under ``root``."""
    opt = {
        'name': 'dp',
        'type': 'DualPixelDataset',
        'dataroot_lqL': str(root / 'inputL'),
        'dataroot_lqR': str(root / 'inputR'),
        'dataroot_gt': str(root / 'target'),
        'io_backend': {'type': 'disk'},
        'phase': 'val',
    }
    if (root / 'inputC').is_dir():
        opt['dataroot_lqC'] = str(root / 'inputC')
    opt.update(extra)
    return opt


def make_lmdbs(root):
    """Per-view LMDBs of a folder layout, written with BasicSR's maker."""
    for key, folder in (('lqL', 'inputL'), ('lqR', 'inputR'), ('gt', 'target'), ('lqC', 'inputC')):
        images = [f'{name}.png' for name in NAMES]
        make_lmdb_from_imgs(str(root / folder), str(root / f'{key}.lmdb'), images, list(NAMES), map_size=1 << 24)
    return {
        'dataroot_lqL': str(root / 'lqL.lmdb'),
        'dataroot_lqR': str(root / 'lqR.lmdb'),
        'dataroot_gt': str(root / 'gt.lmdb'),
        'dataroot_lqC': str(root / 'lqC.lmdb'),
        'io_backend': {'type': 'lmdb'},
    }


@pytest.fixture
def folder_root(tmp_path):
    return make_folder_layout(tmp_path / 'dp')


def test_full_images_keep_16_bit_precision(folder_root):
    item = DualPixelDataset(folder_opt(folder_root))[1]
    assert item['lq'].shape == (6, HEIGHT, WIDTH) and item['lq'].dtype == torch.float32
    assert item['gt'].shape == (3, HEIGHT, WIDTH) and item['lqC'].shape == (3, HEIGHT, WIDTH)
    expected_left = coordinate_image('left', 1).transpose(2, 0, 1).astype(np.float32) / 65535
    assert torch.equal(item['lq'][:3], torch.from_numpy(expected_left))
    scaled_to_8_bit = item['gt'].numpy() * 255
    assert not np.allclose(scaled_to_8_bit, np.round(scaled_to_8_bit), atol=1e-3)
    assert item['lq_path'].endswith('inputL/b.png') and item['gt_path'].endswith('target/b.png')


def test_left_then_right_and_target_are_the_right_views(folder_root):
    item = DualPixelDataset(folder_opt(folder_root))[2]
    ids = [decode_coordinates(item[key][start : start + 3])[2][0, 0] for key, start in (('lq', 0), ('lq', 3))]
    ids += [decode_coordinates(item[key])[2][0, 0] for key in ('gt', 'lqC')]
    assert ids == [view_id * 10000 + 2 * 100 + 11 for view_id in VIEW_IDS.values()]


def test_eight_bit_images_are_scaled_by_255(tmp_path):
    root = tmp_path / 'dp8'
    image = (np.arange(HEIGHT * WIDTH * 3) % 256).astype(np.uint8).reshape(HEIGHT, WIDTH, 3)
    for folder in ('inputL', 'inputR', 'target'):
        write_png(root / folder / 'a.png', 255 - image if folder == 'inputR' else image)  # views must differ
    item = DualPixelDataset(folder_opt(root))[0]
    assert torch.equal(item['gt'], torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255))


@pytest.mark.parametrize('phase', ['val', 'train'])
def test_disk_and_lmdb_give_identical_tensors(folder_root, phase):
    augmentation = {'gt_size': 16, 'use_hflip': True, 'use_vflip': True} if phase == 'train' else {}
    disk = DualPixelDataset(folder_opt(folder_root, phase=phase, **augmentation))
    lmdb = DualPixelDataset({**folder_opt(folder_root, phase=phase, **augmentation), **make_lmdbs(folder_root)})
    assert len(disk) == len(lmdb) == 3
    for index in range(3):
        random.seed(index)
        from_disk = disk[index]
        random.seed(index)
        from_lmdb = lmdb[index]
        for key in ('lq', 'gt', 'lqC'):
            assert torch.equal(from_disk[key], from_lmdb[key])
        assert from_lmdb['lq_path'] == NAMES[index] and from_disk['lq_path'].endswith(f'{NAMES[index]}.png')


def test_training_crops_are_aligned_across_views(folder_root):
    dataset = DualPixelDataset(folder_opt(folder_root, phase='train', gt_size=16))
    offsets = set()
    for seed in range(6):
        random.seed(seed)
        item = dataset[seed % 3]
        views = [item['lq'][:3], item['lq'][3:], item['gt'], item['lqC']]
        coordinates = [decode_coordinates(view)[:2] for view in views]
        for x, y in coordinates[1:]:
            assert np.array_equal(x, coordinates[0][0]) and np.array_equal(y, coordinates[0][1])
        x, y = coordinates[0]
        assert x.shape == (16, 16)
        assert np.array_equal(x, x[0, 0] + np.arange(16)[None, :].repeat(16, 0))
        assert np.array_equal(y, y[0, 0] + np.arange(16)[:, None].repeat(16, 1))
        offsets.add((int(x[0, 0]), int(y[0, 0])))
    assert len(offsets) > 1


def test_images_smaller_than_the_crop_are_refused(folder_root):
    dataset = DualPixelDataset(folder_opt(folder_root, phase='train', gt_size=64))
    with pytest.raises(ValueError, match=r'target/.*\.png: image is 56x40, smaller than the training crop gt_size 64'):
        dataset[0]


def force_augmentation(monkeypatch):
    """Make every random flip happen and every crop start at the top-left corner."""
    monkeypatch.setattr(random, 'random', lambda: 0.0)
    monkeypatch.setattr(random, 'randint', lambda low, high: low)


def test_horizontal_flip_mirrors_and_swaps_left_and_right(folder_root, monkeypatch):
    force_augmentation(monkeypatch)
    item = DualPixelDataset(folder_opt(folder_root, phase='train', gt_size=HEIGHT, use_hflip=True))[0]
    for start, source_view in ((0, 'right'), (3, 'left')):
        mirrored = coordinate_image(source_view)[:, :HEIGHT][:, ::-1]
        expected = torch.from_numpy(mirrored.transpose(2, 0, 1).astype(np.float32) / 65535)
        assert torch.equal(item['lq'][start : start + 3], expected)
    x, _, ident = decode_coordinates(item['gt'])
    assert x[0, 0] == HEIGHT - 1 and ident[0, 0] == 30011


def test_vertical_flip_keeps_left_and_right(folder_root, monkeypatch):
    force_augmentation(monkeypatch)
    item = DualPixelDataset(folder_opt(folder_root, phase='train', gt_size=HEIGHT, use_vflip=True))[0]
    for start, view in ((0, 'left'), (3, 'right')):
        flipped = coordinate_image(view)[::-1, :HEIGHT]
        expected = torch.from_numpy(flipped.transpose(2, 0, 1).astype(np.float32) / 65535)
        assert torch.equal(item['lq'][start : start + 3], expected)


def test_rotation_is_off_by_default_and_warns_when_enabled(folder_root, monkeypatch):
    force_augmentation(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        plain = DualPixelDataset(folder_opt(folder_root, phase='train', gt_size=16, use_hflip=False))[0]
    with pytest.warns(UserWarning, match='use_rot'):
        rotating = DualPixelDataset(folder_opt(folder_root, phase='train', gt_size=16, use_rot=True))
    rotated = rotating[0]
    assert torch.equal(rotated['gt'][0], plain['gt'][0].T)
    assert torch.equal(rotated['lq'][:3], plain['lq'][:3].transpose(1, 2))


def test_training_needs_gt_size(folder_root):
    with pytest.raises(ValueError, match='gt_size'):
        DualPixelDataset(folder_opt(folder_root, phase='train'))


def test_build_dataset_through_basicsr(folder_root):
    from basicsr.data import build_dataset

    dataset = build_dataset(folder_opt(folder_root, phase='train', gt_size=16, use_hflip=True, use_vflip=True))
    assert type(dataset).__name__ == 'DualPixelDataset' and len(dataset) == 3
    assert dataset[0]['lq'].shape == (6, 16, 16)


# ---------------------------------------------------------------------------------------------------------------
# Bad input


def test_missing_view_names_the_image_and_folder(folder_root):
    (folder_root / 'inputR' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'b\.png.*inputR'):
        DualPixelDataset(folder_opt(folder_root))


def test_input_without_target_is_named(folder_root):
    write_png(folder_root / 'inputL' / 'extra.png', coordinate_image('left'))
    with pytest.raises(FileNotFoundError, match=r'inputL/extra\.png has no target'):
        DualPixelDataset(folder_opt(folder_root))


def test_empty_folder_is_named(folder_root):
    for path in (folder_root / 'target').iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r'target: no \*\.png images'):
        DualPixelDataset(folder_opt(folder_root))


def test_views_of_different_sizes_name_both_files(folder_root):
    write_png(folder_root / 'inputR' / 'a.png', coordinate_image('right', height=HEIGHT - 2))
    dataset = DualPixelDataset(folder_opt(folder_root))
    with pytest.raises(ValueError, match=r'inputL/a\.png is 56x40, .*inputR/a\.png is 56x38'):
        dataset[0]


def test_mixed_bit_depth_names_both_files(folder_root):
    write_png(folder_root / 'target' / 'c.png', (coordinate_image('target') >> 8).astype(np.uint8))
    with pytest.raises(ValueError, match=r'mixed bit depth.*inputL/c\.png is 16-bit, .*target/c\.png is 8-bit'):
        DualPixelDataset(folder_opt(folder_root))[2]


@pytest.mark.parametrize(
    'content, message',
    [
        (np.zeros((HEIGHT, WIDTH), np.uint16), 'grayscale'),
        (np.zeros((HEIGHT, WIDTH, 4), np.uint16), '4-channel'),
    ],
)
def test_non_rgb_images_are_named(folder_root, content, message):
    path = folder_root / 'inputL' / 'a.png'
    assert cv2.imwrite(str(path), content)
    with pytest.raises(ValueError, match=rf'inputL/a\.png: {message}'):
        DualPixelDataset(folder_opt(folder_root))[0]


def test_undecodable_file_is_named(folder_root):
    (folder_root / 'inputR' / 'a.png').write_bytes(b'not a png at all')
    with pytest.raises(ValueError, match=r'inputR/a\.png: cannot be decoded'):
        DualPixelDataset(folder_opt(folder_root))[0]


def test_other_pixel_types_are_named(tmp_path):
    path = tmp_path / 'float.png'
    ok, tiff = cv2.imencode('.tiff', np.zeros((4, 4, 3), np.float32))
    assert ok
    path.write_bytes(tiff.tobytes())
    with pytest.raises(ValueError, match=r'float\.png: pixel type float32'):
        read_image(path)


def test_lmdb_key_missing_from_meta_info_is_named(folder_root, tmp_path):
    lmdb_opt = make_lmdbs(folder_root)
    meta = folder_root / 'lqR.lmdb' / 'meta_info.txt'
    meta.write_text(''.join(line for line in meta.read_text().splitlines(True) if not line.startswith('b.png')))
    with pytest.raises(ValueError, match=r"key 'b' is not in .*lqR\.lmdb"):
        DualPixelDataset({**folder_opt(folder_root), **lmdb_opt})
    listed = tmp_path / 'meta.txt'
    listed.write_text('a.png (40,56,3) 1\nzz.png (40,56,3) 1\n')
    with pytest.raises(ValueError, match=r"meta\.txt: lists key 'zz' .*the target LMDB .*gt\.lmdb does not hold"):
        DualPixelDataset({**folder_opt(folder_root), **lmdb_opt, 'meta_info_file': str(listed)})


def test_meta_info_file_selects_lmdb_keys(folder_root, tmp_path):
    listed = tmp_path / 'meta.txt'
    listed.write_text('c.png (40,56,3) 1\n')
    dataset = DualPixelDataset({**folder_opt(folder_root), **make_lmdbs(folder_root), 'meta_info_file': str(listed)})
    assert len(dataset) == 1 and decode_coordinates(dataset[0]['gt'])[2][0, 0] == 30211


# ---------------------------------------------------------------------------------------------------------------
# Original DPDD layout


def make_dpdd_layout(root, split='test', count=3):
    """DPDD folders whose source and target names differ; image i carries id i in every view."""
    for index in range(count):
        write_png(root / f'{split}_c' / 'source' / f'src{index}.png', coordinate_image('combined', index))
        write_png(root / f'{split}_l' / 'source' / f'src{index}_L.png', coordinate_image('left', index))
        write_png(root / f'{split}_r' / 'source' / f'src{index}_R.png', coordinate_image('right', index))
        write_png(root / f'{split}_c' / 'target' / f'tgt{index + 5}.png', coordinate_image('target', index))
    return root


def test_dpdd_layout_pairs_by_sorted_order(tmp_path):
    root = make_dpdd_layout(tmp_path / 'DPDD')
    samples = pair_dpdd_layout(root, 'test', with_combined=True)
    assert [s.name for s in samples] == ['tgt5', 'tgt6', 'tgt7']
    assert samples[1].left.endswith('test_l/source/src1_L.png') and samples[1].right.endswith('src1_R.png')
    assert samples[1].combined.endswith('test_c/source/src1.png') and samples[1].target.endswith('tgt6.png')
    dataset = DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test', 'use_combined': True, 'phase': 'test'})
    item = dataset[2]
    ids = [decode_coordinates(t)[2][0, 0] for t in (item['lq'][:3], item['lq'][3:], item['gt'], item['lqC'])]
    assert ids == [view_id * 10000 + 211 for view_id in VIEW_IDS.values()]
    assert 'lqC' not in DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})[0]


def test_dpdd_layout_count_mismatch_is_an_error(tmp_path):
    root = make_dpdd_layout(tmp_path / 'DPDD')
    (root / 'test_r' / 'source' / 'src2_R.png').unlink()
    with pytest.raises(ValueError, match=r'different numbers of images.*test_r/source: 2'):
        pair_dpdd_layout(root, 'test')


def test_dpdd_layout_empty_folder_is_named(tmp_path):
    root = make_dpdd_layout(tmp_path / 'DPDD')
    for path in (root / 'test_l' / 'source').iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r'test_l/source: no \*_L\.png images'):
        DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})


# ---------------------------------------------------------------------------------------------------------------
# Scene categories


def test_categories_from_restormer_npy_are_one_based(tmp_path):
    names = [f'img{i}' for i in range(5)]
    np.save(tmp_path / 'indoor_labels.npy', np.array([1, 3]))
    assert load_categories(tmp_path / 'indoor_labels.npy', names) == [
        'indoor',
        'outdoor',
        'indoor',
        'outdoor',
        'outdoor',
    ]
    np.save(tmp_path / 'outdoor_labels.npy', np.array([2, 4, 5]))
    assert load_categories(tmp_path / 'outdoor_labels.npy', names)[:3] == ['indoor', 'outdoor', 'indoor']


def test_npy_labels_out_of_range_or_not_covering_are_clear_errors(tmp_path):
    names = [f'img{i}' for i in range(5)]
    np.save(tmp_path / 'indoor_labels.npy', np.array([1, 6]))
    with pytest.raises(ValueError, match=r'indoor_labels\.npy: 1-based label 6 is out of range for 5'):
        load_categories(tmp_path / 'indoor_labels.npy', names)
    np.save(tmp_path / 'indoor_labels.npy', np.array([0]))
    with pytest.raises(ValueError, match=r'1-based label 0 is out of range'):
        load_categories(tmp_path / 'indoor_labels.npy', names)
    np.save(tmp_path / 'indoor_labels.npy', np.array([1, 2]))
    np.save(tmp_path / 'outdoor_labels.npy', np.array([3, 4]))
    with pytest.raises(ValueError, match=r'2 indoor \+ 2 outdoor labels, but the dataset has 5'):
        load_categories(tmp_path / 'indoor_labels.npy', names)


def test_categories_from_text_indices_ranges_and_names(tmp_path):
    names = [f'img{i}' for i in range(6)]
    path = tmp_path / 'labels.txt'
    path.write_text('# comment\nimages 6\nindoor 0-1\nimg4.png\n')
    assert load_categories(path, names) == ['indoor', 'indoor', 'outdoor', 'outdoor', 'indoor', 'outdoor']
    outdoor = tmp_path / 'outdoor_labels.txt'
    outdoor.write_text('img0\n3\n')
    assert load_categories(outdoor, names) == ['outdoor', 'indoor', 'indoor', 'outdoor', 'indoor', 'indoor']


@pytest.mark.parametrize(
    'text, message',
    [
        ('indoor 6\n', r'labels\.txt:1: 0-based index 6 is out of range for 6 images'),
        ('indoor 4-9\n', r'index 4-9 is out of range'),
        ('images 7\nindoor 1\n', r'labels\.txt:1: file describes 7 images but the dataset has 6'),
        ('indoor nope\n', r"image 'nope' is not in the dataset"),
        ('indoor 1\noutdoor 1\n', r'labelled both indoor and outdoor'),
        ('indoor 0-2\noutdoor 3-4\n', r'3 indoor \+ 2 outdoor labels, but the dataset has 6'),
    ],
)
def test_bad_text_labels_are_clear_errors(tmp_path, text, message):
    path = tmp_path / 'labels.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_categories(path, [f'img{i}' for i in range(6)])


def test_shipped_dpdd_test_categories():
    categories = load_categories(DEFAULT_DPDD_TEST_CATEGORIES, [f'scene{i:03d}' for i in range(76)])
    assert categories.count('indoor') == 37 and categories.count('outdoor') == 39
    indoor = [i for i, category in enumerate(categories) if category == 'indoor']
    expected = [*range(8, 14), 16, 32, *range(39, 57), *range(59, 68), 74, 75]
    assert indoor == expected
    with pytest.raises(ValueError, match='file describes 76 images but the dataset has 74'):
        load_categories(DEFAULT_DPDD_TEST_CATEGORIES, [f'scene{i:03d}' for i in range(74)])


def test_dataset_returns_the_category(folder_root, tmp_path):
    labels = tmp_path / 'labels.txt'
    labels.write_text('indoor b\n')
    dataset = DualPixelDataset(folder_opt(folder_root, category_file=str(labels)))
    assert [dataset[i]['category'] for i in range(3)] == ['outdoor', 'indoor', 'outdoor']
    assert 'category' not in DualPixelDataset(folder_opt(folder_root))[0]


def test_crops_larger_than_the_images_are_refused(tmp_path):
    data = make_data(tmp_path / 'data', 1, height=SIZE, width=SIZE + 16)
    for gt_size in (SIZE + 8, SIZE + 32):
        dataset = DualPixelDataset(
            {**train_options('x', data, 1, 1)['datasets']['train'], 'gt_size': gt_size, 'phase': 'train'}
        )
        with pytest.raises(
            ValueError, match=rf'target/000.png: image is 48x32, smaller than the training crop gt_size {gt_size}'
        ):
            dataset[0]


@pytest.mark.parametrize('layout', ['view folders', 'dpdd'])
def test_home_is_expanded_in_every_dataset_path(tmp_path, monkeypatch, layout):
    monkeypatch.setenv('HOME', str(tmp_path))
    if layout == 'view folders':
        make_data(tmp_path / 'data', 1)
        roots = {
            key: f'~/data/{folder}'
            for key, folder in (('dataroot_lqL', 'inputL'), ('dataroot_lqR', 'inputR'), ('dataroot_gt', 'target'))
        }
    else:
        for seed, (folder, name) in enumerate(
            (('test_l/source', 's_L'), ('test_r/source', 's_R'), ('test_c/target', 's'))
        ):
            write_image(tmp_path / 'DPDD' / folder / f'{name}.png', random_rgb(seed))
        roots = {'dataroot_dpdd': '~/DPDD', 'split': 'test'}
    (tmp_path / 'categories.txt').write_text('images 1\nindoor 0\n')
    opt = {'name': 'home', 'type': 'DualPixelDataset', 'phase': 'test', 'category_file': '~/categories.txt', **roots}
    item = DualPixelDataset(opt)[0]
    assert item['lq_path'].startswith(str(tmp_path)) and item['category'] == 'indoor'


@pytest.mark.parametrize('listed', [['nonsense'], ['a', 'b', 'garbage_1', 'garbage_2']])
def test_a_meta_info_file_listing_other_keys_is_blamed_not_the_left_lmdb(tmp_path, listed):
    from tests.data.test_dual_pixel_dataset import folder_opt, make_folder_layout, make_lmdbs

    root = make_folder_layout(tmp_path / 'dp')
    meta_info = tmp_path / 'meta_info.txt'
    meta_info.write_text(''.join(f'{key}.png (16,24,3) 1\n' for key in listed))
    opt = {**folder_opt(root), **make_lmdbs(root), 'meta_info_file': str(meta_info)}
    with pytest.raises(ValueError, match=f'^{re.escape(str(meta_info))}: lists key') as error:
        DualPixelDataset(opt)
    assert f'the target LMDB {root / "gt.lmdb"} does not hold' in str(error.value)
    assert 'lqL.lmdb' not in str(error.value)
