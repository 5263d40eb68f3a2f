"""scripts/prepare_dpdd.py and its crop logic: crop grid, sharpness ranking, exact 16-bit crops, re-runs, LMDB."""

from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers DualPixelDataset)
from dmtnet_arch.data.dpdd_crops import GRID_RECORD, crop_grid, select_sharpest, sharpness_scores
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.utils.img_util import decode_image, read_image
from dmtnet_arch.utils.tile_util import window_starts
from tests.helpers import load_script, make_dpdd

HEIGHT, WIDTH, CROP, STRIDE = 40, 56, 16, 8
CROPS_PER_IMAGE = 4 * 6  # rows start at 0, 8, 16, 24; columns at 0, 8, ..., 40
FOLDERS = ('inputL', 'inputR', 'target', 'inputC')


@pytest.fixture(scope='module')
def prepare_dpdd():
    return load_script('prepare_dpdd')


def write_png(path, rgb):
    """Write an RGB array as PNG, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def random_16_bit(seed, height=HEIGHT, width=WIDTH):
    """Noise image whose values are rarely multiples of 257 (so 8-bit rounding would show)."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width, 3), dtype=np.uint16)


def make_folder_layout(root, names=('a', 'b')):
    """Folder layout whose views are distinct random 16-bit images."""
    for index, name in enumerate(names):
        for offset, folder in enumerate(FOLDERS):
            write_png(root / folder / f'{name}.png', random_16_bit(10 * index + offset))
    return root


def run(prepare_dpdd, source, out, *extra):
    """Run the script's main on small crops; returns its crop count per split."""
    argv = ['--input', str(source), '--out', str(out), '--crop-size', str(CROP), '--stride', str(STRIDE), *extra]
    return prepare_dpdd.prepare(argv)


def files_in(folder):
    """All file names in a folder, hidden ones included."""
    return sorted(path.name for path in Path(folder).iterdir())


def test_dpdd_sized_image_gives_4_rows_by_7_columns():
    grid = crop_grid(1120, 1680, 512, 204)
    assert len(grid) == 28
    assert window_starts(1120, 512, 204) == [0, 204, 408, 608]
    assert window_starts(1680, 512, 204) == [0, 204, 408, 612, 816, 1020, 1168]
    assert grid[0] == (0, 0, 0, 0) and grid[-1] == (3, 6, 608, 1168)


def test_crop_starts_edge_cases():
    assert window_starts(512, 512, 204) == [0]
    assert window_starts(716, 512, 204) == [0, 204]
    with pytest.raises(ValueError, match='smaller than the crop size'):
        crop_grid(500, 600, 512, 204)


def test_sharpness_ranks_blurred_below_sharp():
    sharp = random_16_bit(0, 64, 64)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2)
    flat = np.full_like(sharp, 30000)
    scores = sharpness_scores([blurred, flat, sharp])
    assert scores[2] == 1.0 and scores[1] == 0.0 and 0.0 < scores[0] < 1.0
    scores_8bit = sharpness_scores([(image >> 8).astype(np.uint8) for image in (blurred, flat, sharp)])
    np.testing.assert_allclose(scores_8bit, scores, atol=0.02)


def test_sharpness_is_restormers_relative_measure():
    crops = [cv2.GaussianBlur(random_16_bit(i, 40, 40), (0, 0), 0.3 + 0.4 * i) for i in range(6)]
    sums = np.zeros((4, 6))  # kernel sizes x crops: the sum of Sobel gradient magnitudes of the gray crop
    for i, crop in enumerate(crops):
        gray = cv2.cvtColor(crop.astype(np.float32) / 65535, cv2.COLOR_RGB2GRAY).astype(np.float64)
        for j, k in enumerate((3, 7, 11, 15)):
            gx, gy = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=k), cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=k)
            sums[j, i] = np.hypot(gx, gy).sum()
    normalised = (sums - sums.min(1, keepdims=True)) / (sums.max(1, keepdims=True) - sums.min(1, keepdims=True))
    np.testing.assert_allclose(sharpness_scores(crops), normalised.prod(0), rtol=1e-6)
    assert select_sharpest(list(range(6)), sharpness_scores(crops), 0.5) == [0, 1, 2]  # the three least blurred


def test_select_sharpest_drops_the_lowest_scores():
    crops = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']
    scores = [5, 1, 9, 3, 7, 2, 8, 0, 6, 4]
    assert select_sharpest(crops, scores, 0.3) == ['a', 'c', 'd', 'e', 'g', 'i', 'j']
    assert select_sharpest(crops, scores, 0.0) == crops
    with pytest.raises(ValueError, match='drop fraction'):
        select_sharpest(crops, scores, 1.0)


def test_crops_are_exact_16_bit_copies_of_the_source(prepare_dpdd, tmp_path):
    source = make_folder_layout(tmp_path / 'src')
    counts = run(prepare_dpdd, source, tmp_path / 'out', '--layout', 'folder', '--split', 'train')
    assert counts == {'train': 2 * CROPS_PER_IMAGE}
    for folder in FOLDERS:
        names = files_in(tmp_path / 'out' / 'train' / folder)
        assert len(names) == 2 * CROPS_PER_IMAGE and 'b_3_5.png' in names
        original = read_image(source / folder / 'b.png')
        crop = read_image(tmp_path / 'out' / 'train' / folder / 'b_2_5.png')
        assert crop.dtype == np.uint16
        assert np.array_equal(crop, original[16:32, 40:56])


def test_drop_blurry_keeps_the_sharper_crops(prepare_dpdd, tmp_path):
    source = tmp_path / 'src'
    target = random_16_bit(1)
    target[:, :28] = cv2.GaussianBlur(target, (0, 0), 3)[:, :28]
    for folder in FOLDERS[:3]:
        write_png(source / folder / 'a.png', target)
    counts = run(prepare_dpdd, source, tmp_path / 'out', '--layout', 'folder', '--drop-blurry', '0.5')
    assert counts == {'train': CROPS_PER_IMAGE // 2}
    kept_columns = {int(name[:-4].split('_')[2]) for name in files_in(tmp_path / 'out' / 'train' / 'target')}
    assert kept_columns == {3, 4, 5}


def test_rerun_leaves_no_duplicates_stale_crops_or_temp_files(prepare_dpdd, tmp_path):
    source = make_folder_layout(tmp_path / 'src')
    out = tmp_path / 'out'
    run(prepare_dpdd, source, out, '--layout', 'folder')
    first = {folder: files_in(out / 'train' / folder) for folder in FOLDERS}
    (out / 'train' / 'inputL' / '.a_0_0.png.12345.partial').write_bytes(b'half a png')
    run(prepare_dpdd, source, out, '--layout', 'folder')
    assert {folder: files_in(out / 'train' / folder) for folder in FOLDERS} == first
    run(prepare_dpdd, source, out, '--layout', 'folder', '--drop-blurry', '0.25')
    for folder in FOLDERS:
        names = files_in(out / 'train' / folder)
        assert len(names) == 2 * (CROPS_PER_IMAGE - 6) and set(names) < set(first[folder])


def test_parallel_workers_write_the_same_crops(prepare_dpdd, tmp_path):
    source = make_folder_layout(tmp_path / 'src')
    run(prepare_dpdd, source, tmp_path / 'one', '--layout', 'folder', '--drop-blurry', '0.3')
    run(prepare_dpdd, source, tmp_path / 'two', '--layout', 'folder', '--drop-blurry', '0.3', '--workers', '2')
    for folder in FOLDERS:
        names = files_in(tmp_path / 'one' / 'train' / folder)
        assert names == files_in(tmp_path / 'two' / 'train' / folder)
        for name in names[::7]:
            one = (tmp_path / 'one' / 'train' / folder / name).read_bytes()
            assert one == (tmp_path / 'two' / 'train' / folder / name).read_bytes()


def test_dpdd_layout_and_several_splits(prepare_dpdd, tmp_path):
    root = tmp_path / 'DPDD'
    for split, count in (('train', 2), ('val', 1)):
        for index in range(count):
            image = random_16_bit(index)
            write_png(root / f'{split}_c' / 'source' / f's{index}.png', image)
            write_png(root / f'{split}_l' / 'source' / f's{index}_L.png', image)
            write_png(root / f'{split}_r' / 'source' / f's{index}_R.png', image)
            write_png(root / f'{split}_c' / 'target' / f't{index}.png', image)
    counts = run(prepare_dpdd, root, tmp_path / 'out', '--layout', 'dpdd', '--split', 'train', 'val')
    assert counts == {'train': 2 * CROPS_PER_IMAGE, 'val': CROPS_PER_IMAGE}
    assert files_in(tmp_path / 'out' / 'val') == sorted([*FOLDERS, 'crop_grid.json'])
    assert 't1_3_5.png' in files_in(tmp_path / 'out' / 'train' / 'inputL')


def test_lmdb_round_trip_keeps_16_bit(prepare_dpdd, tmp_path):
    source = make_folder_layout(tmp_path / 'src')
    split_dir = tmp_path / 'out' / 'train'
    run(prepare_dpdd, source, tmp_path / 'out', '--layout', 'folder', '--lmdb')
    run(prepare_dpdd, source, tmp_path / 'out', '--layout', 'folder', '--lmdb')
    assert sorted(p.name for p in split_dir.glob('*.lmdb')) == ['gt.lmdb', 'lqC.lmdb', 'lqL.lmdb', 'lqR.lmdb']
    assert not list(split_dir.glob('.*'))
    meta = (split_dir / 'gt.lmdb' / 'meta_info.txt').read_text().splitlines()
    assert len(meta) == 2 * CROPS_PER_IMAGE and 'a_0_0.png (16,16,3) 1' in meta
    with lmdb.open(str(split_dir / 'lqR.lmdb'), readonly=True, lock=False) as env, env.begin() as txn:
        stored = decode_image(txn.get(b'b_1_4'), 'b_1_4')
    assert stored.dtype == np.uint16 and np.array_equal(stored, read_image(split_dir / 'inputR' / 'b_1_4.png'))
    views = {'dataroot_lqL': 'lqL', 'dataroot_lqR': 'lqR', 'dataroot_gt': 'gt', 'dataroot_lqC': 'lqC'}
    from_lmdb = DualPixelDataset(
        {key: str(split_dir / f'{name}.lmdb') for key, name in views.items()} | {'io_backend': {'type': 'lmdb'}}
    )
    from_disk = DualPixelDataset({key: str(split_dir / folder) for key, folder in zip(views, FOLDERS, strict=True)})
    for index in (0, 17, 47):
        assert torch.equal(from_lmdb[index]['lq'], from_disk[index]['lq'])
        assert torch.equal(from_lmdb[index]['gt'], from_disk[index]['gt'])


def test_prepare_dpdd_refuses_an_output_inside_its_input(tmp_path):
    prepare = load_script('prepare_dpdd')
    root = make_dpdd(tmp_path / 'DPDD', ['a'], split='train')
    for out in (root, root / 'crops'):
        with pytest.raises(ValueError, match=rf'output folder {out / "train"} overlaps the input {root}'):
            prepare.main(['--input', str(root), '--layout', 'dpdd', '--out', str(out), '--crop-size', '16'])
    assert sorted(path.name for path in root.iterdir()) == ['train_c', 'train_l', 'train_r']


def test_prepare_dpdd_rerun_on_another_grid_never_mixes_grids(tmp_path, monkeypatch):
    prepare = load_script('prepare_dpdd')
    root = make_dpdd(tmp_path / 'DPDD', ['a', 'b'], size=32, split='train')
    out = tmp_path / 'crops'
    args = ['--input', str(root), '--layout', 'dpdd', '--out', str(out), '--crop-size', '16']
    assert prepare.prepare([*args, '--stride', '8']) == {'train': 2 * 9}
    assert len(list((out / 'train' / 'inputL').iterdir())) == 18
    written = []

    def crop_then_fail(sample, **kwargs):  # the second image never comes: an interrupted run
        if written:
            raise KeyboardInterrupt
        written.append(sample.name)
        return prepare_crop(sample, **kwargs)

    prepare_crop = prepare.crop_sample
    monkeypatch.setattr(prepare, 'crop_sample', crop_then_fail)
    with pytest.raises(KeyboardInterrupt):
        prepare.main([*args, '--stride', '16'])
    crops = sorted(path.name for path in (out / 'train' / 'inputL').iterdir())
    assert crops == ['t0_0_0.png', 't0_0_1.png', 't0_1_0.png', 't0_1_1.png']  # only the new 2 x 2 grid
    assert '"stride": 16' in (out / 'train' / GRID_RECORD).read_text()
