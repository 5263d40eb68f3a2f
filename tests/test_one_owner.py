"""One owner per concept: the shared helpers that replaced the copies in the package and the scripts."""

import argparse
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.data.data_util import DualPixelSample, pair_views_by_name, pair_views_in_folder, read_sample_views
from dmtnet_arch.data.synthetic_dp import generate_dataset, has_defocus, load_defocus
from dmtnet_arch.models.dual_pixel_model import DualPixelModel, metric_files_stem, read_metric_files
from dmtnet_arch.tools.inference import add_network_arguments, load_network
from dmtnet_arch.tools.published import DMTNET_COMPLEXITY, PUBLISHED_TABLE1
from dmtnet_arch.tools.tiling_error import TILING_COLUMNS, tiling_error
from dmtnet_arch.utils.cli_util import parse_size, parse_sizes
from dmtnet_arch.utils.file_util import csv_bytes
from dmtnet_arch.utils.img_util import (
    float_to_integer,
    gradient_magnitude,
    img2tensor,
    list_images,
    read_image,
    tensor2img,
    write_png,
)
from dmtnet_arch.utils.options import write_option_file


def test_metric_files_read_back_what_the_model_wrote(tmp_path):
    opt = {
        'is_train': False,
        'path': {'results_root': str(tmp_path)},
        'val': {'metrics': {'psnr': {'type': 'calculate_dp_psnr'}, 'mae (x)': {'protocol': '8bit'}}},
    }
    records = [
        {'image': 'a', 'category': 'indoor', 'psnr': 30.0, 'mae (x)': 0.01},
        {'image': 'b', 'category': 'outdoor', 'psnr': 20.0, 'mae (x)': 0.03},
    ]
    summary = {'combined': {'psnr': 25.0, 'mae (x)': 0.02}, 'indoor': {'psnr': 30.0, 'mae (x)': 0.01}}
    DualPixelModel.write_metric_files(SimpleNamespace(opt=opt), 'set', records, ['psnr', 'mae (x)'], summary, 1)
    written = read_metric_files(metric_files_stem(opt, 'set', 1))
    assert written.images['b'] == {'category': 'outdoor', 'psnr': 20.0, 'mae (x)': 0.03}
    assert written.groups['combined'] == {'psnr': 25.0, 'mae (x)': 0.02}
    assert written.counts == {'combined': 2, 'indoor': 1}
    assert written.protocols == {'psnr': '16bit', 'mae (x)': '8bit'}


def test_metric_files_of_training_go_under_the_experiment():
    opt = {'is_train': True, 'path': {'experiments_root': 'exp'}}
    assert str(metric_files_stem(opt, 'val', 100)) == 'exp/metrics/metrics_val_100'


def test_dmtnet_complexity_is_read_from_the_published_table():
    assert DMTNET_COMPLEXITY['B'] == (24.46, 1294.41)
    assert set(DMTNET_COMPLEXITY) == {'T', 'S', 'B', 'L', 'H'}
    assert len({row[0] for row in PUBLISHED_TABLE1}) == len(PUBLISHED_TABLE1)


def test_parse_size_reads_height_by_width_or_a_square():
    assert parse_size('1120x1680') == (1120, 1680)
    assert parse_size('128') == (128, 128)
    assert parse_sizes('512x512,96X160') == [(512, 512), (96, 160)]


@pytest.mark.parametrize('text', ['', 'x', '0x10', '10x', '1x2x3', '-5', '12.5', 'axb'])
def test_parse_size_refuses_anything_else_showing_the_form(text):
    with pytest.raises(argparse.ArgumentTypeError, match='HEIGHTxWIDTH'):
        parse_size(text)


def test_float_images_become_8_or_16_bit_levels_and_tensors_round_trip():
    rgb = np.array([[[-0.1, 0.5, 1.2]]], dtype=np.float32)
    assert float_to_integer(rgb, 8).tolist() == [[[0, 128, 255]]]
    assert float_to_integer(rgb, 16).dtype == np.uint16
    tensor = img2tensor(np.random.rand(4, 5, 6).astype(np.float32))
    assert tensor.shape == (6, 4, 5) and tensor.is_contiguous()
    assert np.array_equal(tensor2img(tensor[None]), tensor.numpy().transpose(1, 2, 0))


def test_sample_views_are_read_together_and_must_match(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint16)
    for view in ('left', 'right', 'target'):
        write_png(tmp_path / f'{view}.png', rgb)
    write_png(tmp_path / 'small.png', rgb[:4])
    sample = DualPixelSample('a', *(str(tmp_path / f'{v}.png') for v in ('left', 'right', 'target')))
    assert list(read_sample_views(sample)) == ['left', 'right', 'target']
    assert list(read_sample_views(sample, ('left', 'right'))) == ['left', 'right']
    with pytest.raises(ValueError, match='small.png is 8x4'):
        read_sample_views(DualPixelSample('a', sample.left, str(tmp_path / 'small.png')))


def test_csv_bytes_keeps_the_line_ending_asked_for():
    assert csv_bytes(['a', 'b'], [[1, None]]) == b'a,b\r\n1,\r\n'
    assert csv_bytes(['a'], [['x,y']], lineterminator='\n') == b'a\n"x,y"\n'


TINY_DMTNET = {'type': 'DMTNet', 'variant': 'S', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'num_rm': 1}


def write_tiny_checkpoint(tmp_path):
    """A tiny DMTNet's option file (without weights) and checkpoint."""
    net = DMTNet(**{k: v for k, v in TINY_DMTNET.items() if k != 'type'})
    weights = tmp_path / 'net.pth'
    torch.save({'params': net.state_dict()}, weights)
    return write_option_file(tmp_path / 'test.yml', {'network_g': dict(TINY_DMTNET)}), weights


def test_load_network_builds_the_option_files_network_with_the_weights(tmp_path):
    option_file, weights = write_tiny_checkpoint(tmp_path)
    parser = argparse.ArgumentParser()
    add_network_arguments(parser)
    args = parser.parse_args(['-opt', str(option_file), '--weights', str(weights), '--param-key', 'params'])
    net, network_options = load_network(args.opt, args.weights, args.param_key)
    assert network_options['type'] == 'DMTNet' and not net.training
    with pytest.raises(ValueError, match='no weights to deblur with'):
        load_network(option_file)


def test_tiling_error_of_a_network_is_zero_when_one_tile_covers_the_image(tmp_path):
    option_file, weights = write_tiny_checkpoint(tmp_path)
    net, _ = load_network(option_file, weights)
    lq, target = torch.rand(1, 6, 32, 48), torch.rand(1, 3, 32, 48)
    row = tiling_error(net, lq, target, tile=64, overlap=8)
    assert len(row) == len(TILING_COLUMNS)
    assert row[0] == pytest.approx(row[1]) and row[3] == float('inf') and row[7] == 0
    tiled = tiling_error(net, lq, target, tile=32, overlap=8)
    assert tiled[3] < float('inf') and not np.isnan(tiled[2])


def test_images_are_listed_by_suffix_and_pattern(tmp_path):
    for name in ('b_L.png', 'a_L.PNG', 'a_R.jpg', 'notes.txt'):
        (tmp_path / name).write_bytes(b'')
    assert [p.name for p in list_images(tmp_path)] == ['a_L.PNG', 'a_R.jpg', 'b_L.png']
    assert [p.name for p in list_images(tmp_path, ('.png',), '*_L.png')] == ['b_L.png']
    with pytest.raises(ValueError, match=r'no \*_R.png images'):
        list_images(tmp_path, ('.png',), '*_R.png')
    with pytest.raises(FileNotFoundError, match='folder not found'):
        list_images(tmp_path / 'absent')


def test_pairing_by_name_and_in_one_folder_report_a_lone_view_alike(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    for name in ('left/a.png', 'left/b_L.png', 'right/a.png', 'one/a_L.png', 'one/a_R.png', 'one/b_L.png'):
        write_png(tmp_path / name, rgb)
    samples, problems = pair_views_by_name(tmp_path / 'left', tmp_path / 'right')
    assert [s.name for s in samples] == ['a'] and problems == [
        f"{tmp_path / 'left/b_L.png'}: no image of scene 'b' in {tmp_path / 'right'}"
    ]
    samples, problems = pair_views_in_folder(tmp_path / 'one')
    assert [s.name for s in samples] == ['a'] and problems == [
        f"{tmp_path / 'one/b_L.png'}: no right view of scene 'b' in {tmp_path / 'one'}"
    ]


def test_generated_defocus_maps_are_found_by_sample_name(tmp_path):
    generate_dataset(tmp_path, count=1, size=16, progress=False)
    assert has_defocus(tmp_path) and load_defocus(tmp_path, '000000').shape == (16, 16)


def test_gradient_magnitude_keeps_the_float_type_and_finds_edges():
    grey = np.zeros((8, 8), np.float32)
    grey[:, 4:] = 1
    magnitude = gradient_magnitude(grey)
    assert magnitude.dtype == np.float32 and magnitude[:, 0].max() == 0 and magnitude[:, 4].min() > 0
    assert gradient_magnitude(grey.astype(np.float64), ksize=7).dtype == np.float64


def test_textures_may_be_grey_or_rgba_but_views_must_be_rgb(tmp_path):
    assert cv2.imwrite(str(tmp_path / 'rgba.png'), np.zeros((4, 4, 4), np.uint8))
    assert read_image(tmp_path / 'rgba.png', rgb_only=False).shape == (4, 4, 4)
    with pytest.raises(ValueError, match='4-channel image'):
        read_image(tmp_path / 'rgba.png')
