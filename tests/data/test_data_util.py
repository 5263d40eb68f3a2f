"""data/data_util.py: DPDD views paired by scene stem, and a DPDD root without the split asked for."""

import pytest

import dmtnet_arch  # noqa: F401
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.utils.img_util import write_image
from tests.helpers import lose_one_left_view_and_add_another, make_dpdd, random_rgb


def test_dpdd_views_are_paired_by_stem(tmp_path):
    root = make_dpdd(tmp_path / 'DPDD', ['a', 'b', 'c'])
    assert len(DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})) == 3
    lose_one_left_view_and_add_another(root)
    with pytest.raises(ValueError, match=r'test_l/source/c_L.png and .*test_r/source/b_R.png.*left views: \[.z.\]'):
        DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})
    root = make_dpdd(tmp_path / 'DPDD2', ['a', 'b', 'c'])
    (root / 'test_c' / 'source' / 'c.png').rename(root / 'test_c' / 'source' / 'd.png')
    with pytest.raises(ValueError, match=r'only among the combined views: \[.d.\]'):
        DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})


@pytest.mark.parametrize('splits', [['train'], ['train', 'val']])
def test_a_dpdd_root_without_the_split_suggests_split(tmp_path, splits):
    from dmtnet_arch.data.data_util import find_input_pairs

    for split in splits:
        write_image(tmp_path / f'DPDD/{split}_l/source/s_L.png', random_rgb(1))
        write_image(tmp_path / f'DPDD/{split}_r/source/s_R.png', random_rgb(2))
    with pytest.raises(FileNotFoundError, match=rf"without a 'test' split .*it has {', '.join(splits)}: pass --split"):
        find_input_pairs(tmp_path / 'DPDD', 'test')
