"""scripts/inference.py: every input layout, bit depths and names kept, bad pairs skipped, OOM fallback, alpha CSV."""

import csv
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.archs.ifan_arch import IFAN
from dmtnet_arch.data.data_util import split_view_name
from dmtnet_arch.tools.inference import Deblurrer, input_channels
from dmtnet_arch.tools.inference_io import is_out_of_memory
from dmtnet_arch.utils.img_util import read_image, write_image
from dmtnet_arch.utils.tile_util import tiled_forward
from tests.helpers import SMALL_S, load_script

NETWORK = SMALL_S
HEIGHT, WIDTH = 24, 40


@ARCH_REGISTRY.register(suffix='test_inference')
class SingleImageNet(nn.Module):
    """A 3-channel (single-image) network standing for IFAN: output = the input scaled by a learnt factor."""

    def __init__(self, in_nc: int = 3):
        super().__init__()
        self.in_nc = in_nc
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        assert x.shape[1] == 3
        return x * self.gain


def run(argv) -> int:
    return load_script('inference').main([str(a) for a in argv] + ['--quiet', '--device', 'cpu'])


def random_rgb(seed: int, bits: int = 16, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.random.default_rng(seed).integers(0, top + 1, (height, width, 3)).astype(dtype)


def write_pair(left: Path, right: Path, seed: int = 0, bits: int = 16, **size):
    write_image(left, random_rgb(seed, bits, **size))
    write_image(right, random_rgb(seed + 100, bits, **size))


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Option file and checkpoint: params_ema holds the network used; params holds other, wrong weights."""
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    net = DMTNet(**{k: v for k, v in NETWORK.items() if k != 'type'}).eval()
    wrong = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    torch.save({'params': wrong, 'params_ema': net.state_dict()}, folder / 'net.pth')
    options = folder / 'net.yml'
    options.write_text(
        'network_g:\n' + ''.join(f'  {k}: {v}\n' for k, v in NETWORK.items()) + f'path:\n  pretrain_network_g: '
        f'{folder / "net.pth"}\n'
    )
    return options, net


def expected_output(net, left_file, right_file, bits=16) -> np.ndarray:
    views = [read_image(f).astype(np.float32) / (255 if bits == 8 else 65535) for f in (left_file, right_file)]
    lq = torch.from_numpy(np.concatenate(views, 2).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        out = net(lq)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    return out * (255 if bits == 8 else 65535)


def assert_output_matches(path: Path, expected: np.ndarray, dtype=np.uint16):
    written = read_image(path)
    assert written.dtype == dtype and written.shape == expected.shape
    np.testing.assert_allclose(written.astype(np.float64), expected, atol=1.01)


# ----------------------------------------------------------------------------------------------------------------
# Input layouts


def test_dpdd_layout_pairs_by_scene_and_keeps_the_target_name(tmp_path, weights):
    options, net = weights
    root = tmp_path / 'DPDD'
    for i, scene in enumerate(['1P0A1001', '1P0A1002']):
        write_pair(root / 'test_l/source' / f'{scene}_L.png', root / 'test_r/source' / f'{scene}_R.png', seed=i)
        write_image(root / 'test_c/target' / f'{scene}.png', random_rgb(9))
    assert run(['-opt', options, '--input', root, '--output', tmp_path / 'out']) == 0
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['1P0A1001.png', '1P0A1002.png']
    scene = root / 'test_l/source/1P0A1002_L.png', root / 'test_r/source/1P0A1002_R.png'
    assert_output_matches(tmp_path / 'out/1P0A1002.png', expected_output(net, *scene))


def test_view_folder_layout(tmp_path, weights):
    options, net = weights
    write_pair(tmp_path / 'in/inputL/a.png', tmp_path / 'in/inputR/a.png')
    assert run(['-opt', options, '--input', tmp_path / 'in', '--output', tmp_path / 'out']) == 0
    assert_output_matches(
        tmp_path / 'out/a.png', expected_output(net, tmp_path / 'in/inputL/a.png', tmp_path / 'in/inputR/a.png')
    )


@pytest.mark.parametrize(('left', 'right'), [('_L', '_R'), ('_l', '_r'), ('_left', '_right'), ('-Left', '-Right')])
def test_folder_of_pairs_in_every_naming(tmp_path, weights, left, right):
    options, _ = weights
    write_pair(tmp_path / 'in' / f'IMG_0001{left}.png', tmp_path / 'in' / f'IMG_0001{right}.png')
    assert run(['-opt', options, '--input', tmp_path / 'in', '--output', tmp_path / 'out']) == 0
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['IMG_0001.png']


def test_left_and_right_folders_pair_by_scene_name(tmp_path, weights):
    options, net = weights
    write_pair(tmp_path / 'L/x_L.png', tmp_path / 'R/x_R.png', seed=1)
    write_pair(tmp_path / 'L/y.png', tmp_path / 'R/y.png', seed=2)
    assert run(['-opt', options, '--left', tmp_path / 'L', '--right', tmp_path / 'R', '--output', tmp_path / 'o']) == 0
    assert sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['x.png', 'y.png']
    assert_output_matches(tmp_path / 'o/x.png', expected_output(net, tmp_path / 'L/x_L.png', tmp_path / 'R/x_R.png'))


def test_one_pair_of_files(tmp_path, weights):
    options, net = weights
    write_pair(tmp_path / 'IMG_L.png', tmp_path / 'IMG_R.png')
    argv = ['-opt', options, '--left', tmp_path / 'IMG_L.png', '--right', tmp_path / 'IMG_R.png']
    assert run([*argv, '--output', tmp_path / 'out']) == 0
    assert_output_matches(
        tmp_path / 'out/IMG.png', expected_output(net, tmp_path / 'IMG_L.png', tmp_path / 'IMG_R.png')
    )


def test_swap_views_gives_the_network_the_views_the_other_way_round(tmp_path, weights):
    options, net = weights
    write_pair(tmp_path / 'IMG_L.png', tmp_path / 'IMG_R.png')
    argv = ['-opt', options, '--left', tmp_path / 'IMG_L.png', '--right', tmp_path / 'IMG_R.png', '--swap-views']
    assert run([*argv, '--output', tmp_path / 'out']) == 0
    swapped = expected_output(net, tmp_path / 'IMG_R.png', tmp_path / 'IMG_L.png')
    assert_output_matches(tmp_path / 'out/IMG.png', swapped)  # same name, the views exchanged
    given_order = expected_output(net, tmp_path / 'IMG_L.png', tmp_path / 'IMG_R.png')
    assert np.abs(swapped.astype(np.int64) - given_order).max() > 0  # the order matters to this network


def test_views_that_look_reversed_are_warned_about_and_swap_views_silences_it(tmp_path, weights, caplog):
    """In DPDD's order, blur behind the focal plane shifts the right view's content right; a pair whose blocks
    mostly shift the other way gets a warning naming --swap-views (and is still deblurred)."""
    options, _ = weights
    scene = cv2.blur(np.random.default_rng(2).random((184, 232, 3)), (5, 5))
    write_image(tmp_path / 'IMG_L.png', np.round(np.roll(scene, 1, axis=1) * 65535).astype(np.uint16))
    write_image(tmp_path / 'IMG_R.png', np.round(np.roll(scene, -1, axis=1) * 65535).astype(np.uint16))
    argv = ['-opt', options, '--left', tmp_path / 'IMG_L.png', '--right', tmp_path / 'IMG_R.png']
    with caplog.at_level(logging.WARNING, logger='dmtnet_arch.tools.inference'):
        assert run([*argv, '--output', tmp_path / 'out']) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'IMG: in 100% of its 12 shifted blocks' in warnings[0]
    assert '--swap-views' in warnings[0] and (tmp_path / 'out/IMG.png').is_file()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='dmtnet_arch.tools.inference'):
        assert run([*argv, '--output', tmp_path / 'swapped', '--swap-views']) == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_view_names():
    assert split_view_name('IMG_0001_L') == ('IMG_0001', 'left')
    assert split_view_name('a-right') == ('a', 'right')
    assert split_view_name('portrait') is None
    assert split_view_name('_L') is None


# ----------------------------------------------------------------------------------------------------------------
# Bit depths, formats, names


# one case a line, aligned by hand: clearer than the formatter's layout
@pytest.mark.parametrize(('bits', 'suffix', 'force', 'out_name', 'out_dtype'), [
    (8, '.png', None, 'a.png', np.uint8),
    (16, '.png', None, 'a.png', np.uint16),
    (16, '.tif', None, 'a.tif', np.uint16),
    (8, '.tiff', None, 'a.tiff', np.uint8),
    (8, '.png', 16, 'a.png', np.uint16),
    (16, '.png', 8, 'a.png', np.uint8),
])  # fmt: skip
def test_bit_depth_format_and_name_round_trip(tmp_path, weights, bits, suffix, force, out_name, out_dtype):
    options, net = weights
    left, right = tmp_path / f'in/a_L{suffix}', tmp_path / f'in/a_R{suffix}'
    write_pair(left, right, bits=bits)
    argv = ['-opt', options, '--input', tmp_path / 'in', '--output', tmp_path / 'out']
    assert run(argv + (['--bits', force] if force else [])) == 0
    assert [p.name for p in (tmp_path / 'out').iterdir()] == [out_name]
    expected = expected_output(net, left, right, bits) / (255 if bits == 8 else 65535)
    assert_output_matches(tmp_path / 'out' / out_name, expected * (255 if out_dtype == np.uint8 else 65535), out_dtype)


def test_jpeg_views_give_an_8_bit_png(tmp_path, weights):
    options, _ = weights
    (tmp_path / 'in').mkdir()
    for view in 'LR':
        assert cv2.imwrite(str(tmp_path / f'in/v_{view}.jpg'), random_rgb(3, 8))
    assert run(['-opt', options, '--input', tmp_path / 'in', '--output', tmp_path / 'out']) == 0
    assert read_image(tmp_path / 'out/v.png').dtype == np.uint8


# ----------------------------------------------------------------------------------------------------------------
# Bad inputs


def test_bad_pairs_are_reported_and_skipped(tmp_path, weights, capsys):
    options, _ = weights
    folder = tmp_path / 'in'
    write_pair(folder / 'good1_L.png', folder / 'good1_R.png', seed=1)
    write_pair(folder / 'good2_L.png', folder / 'good2_R.png', seed=2)
    write_image(folder / 'size_L.png', random_rgb(0))
    write_image(folder / 'size_R.png', random_rgb(0, width=WIDTH + 1))
    write_image(folder / 'depth_L.png', random_rgb(0, bits=8))
    write_image(folder / 'depth_R.png', random_rgb(0, bits=16))
    (folder / 'broken_L.png').write_bytes(b'not an image')
    write_image(folder / 'broken_R.png', random_rgb(0))
    write_image(folder / 'alone_L.png', random_rgb(0))
    assert run(['-opt', options, '--input', folder, '--output', tmp_path / 'out']) == 1
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['good1.png', 'good2.png']
    failures = capsys.readouterr().err
    assert '4 failed' in failures
    expected = [
        'size_L.png is 40x24, ',
        'size_R.png is 41x24',
        'depth_R.png is 16-bit',
        'broken_L.png: cannot be decoded',
        "alone_L.png: no right view of scene 'alone'",
    ]
    for text in expected:
        assert text in failures


def test_the_same_file_as_both_views_is_refused(tmp_path, weights, capsys):
    options, _ = weights
    write_image(tmp_path / 'a.png', random_rgb(0))
    argv = ['-opt', options, '--left', tmp_path / 'a.png', '--right', tmp_path / 'a.png', '--output', tmp_path / 'o']
    assert run(argv) == 1
    assert 'a.png is given as both the left and the right view' in capsys.readouterr().err


def one_pair_argv(options, folder: Path) -> list:
    """Arguments deblurring the pair ``a_L.png`` / ``a_R.png`` of ``folder`` into ``folder/o``."""
    return ['-opt', options, '--left', folder / 'a_L.png', '--right', folder / 'a_R.png', '--output', folder / 'o']


def test_no_weights_is_an_error_not_random_output(tmp_path, weights):
    options = tmp_path / 'net.yml'
    options.write_text('network_g:\n' + ''.join(f'  {k}: {v}\n' for k, v in NETWORK.items()))
    write_pair(tmp_path / 'a_L.png', tmp_path / 'a_R.png')
    with pytest.raises(ValueError, match=r'net\.yml: no weights .*pretrain_network_g.*--weights'):
        run(one_pair_argv(options, tmp_path))


def test_params_key_can_be_chosen(tmp_path, weights):
    options, _ = weights
    write_pair(tmp_path / 'a_L.png', tmp_path / 'a_R.png')
    argv = ['-opt', options, '--left', tmp_path / 'a_L.png', '--right', tmp_path / 'a_R.png']
    assert run([*argv, '--output', tmp_path / 'out', '--param-key', 'params']) == 0
    zero_weights_output = read_image(tmp_path / 'out/a.png')
    assert zero_weights_output.max() == 0  # the all-zero 'params' were used, not params_ema


# ----------------------------------------------------------------------------------------------------------------
# Single-image peers


@pytest.fixture
def single_image_options(tmp_path):
    net = SingleImageNet()
    net.gain.data.fill_(0.5)
    torch.save({'params': net.state_dict()}, tmp_path / 'single.pth')
    options = tmp_path / 'single.yml'
    options.write_text('network_g:\n  type: SingleImageNet_test_inference\n')
    return options


def test_single_image_network_gets_the_combined_view_when_given(tmp_path, single_image_options, caplog):
    root = tmp_path / 'in'
    write_pair(root / 'inputL/a.png', root / 'inputR/a.png')
    combined = random_rgb(7)
    write_image(root / 'inputC/a.png', combined)
    argv = ['-opt', single_image_options, '--weights', tmp_path / 'single.pth', '--input', root]
    with caplog.at_level(logging.INFO, logger='dmtnet_arch.tools.inference'):
        assert run([*argv, '--output', tmp_path / 'out']) == 0
    assert 'combined view' in caplog.text
    np.testing.assert_allclose(read_image(tmp_path / 'out/a.png'), combined * 0.5, atol=1.01)


class DeclaresNoChannels(nn.Module):
    """A network that names its input channels nowhere: its first convolution is not guessed from."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3)
        self.later = nn.Conv2d(8, 3, 1)


def test_input_channels_from_attribute_or_option_and_an_error_otherwise():
    assert input_channels(SingleImageNet(), {}) == 3
    assert input_channels(DMTNet(variant='T', num_transformer_blocks=1, upsampler_channels=16), {}) == 6
    assert input_channels(IFAN(channels=4, res_num=1, iterations=1), {}) == 3
    assert input_channels(nn.Identity(), {'inp_channels': 6}) == 6
    with pytest.raises(ValueError, match='DeclaresNoChannels: cannot tell its input channels'):
        input_channels(DeclaresNoChannels(), {})


def test_single_image_network_gets_the_mean_of_the_views_otherwise(tmp_path, single_image_options, caplog):
    write_pair(tmp_path / 'a_L.png', tmp_path / 'a_R.png')
    argv = ['-opt', single_image_options, '--weights', tmp_path / 'single.pth', '--left', tmp_path / 'a_L.png']
    with caplog.at_level(logging.INFO, logger='dmtnet_arch.tools.inference'):
        assert run([*argv, '--right', tmp_path / 'a_R.png', '--output', tmp_path / 'out']) == 0
    assert 'mean of the left and right views' in caplog.text
    mean = (read_image(tmp_path / 'a_L.png').astype(np.float64) + read_image(tmp_path / 'a_R.png')) / 2
    np.testing.assert_allclose(read_image(tmp_path / 'out/a.png'), mean * 0.5, atol=1.01)


# ----------------------------------------------------------------------------------------------------------------
# Scale weights


def test_alpha_csv_lists_each_dmssrm_per_image(tmp_path, weights):
    options, net = weights
    write_pair(tmp_path / 'in/a_L.png', tmp_path / 'in/a_R.png', seed=1)
    write_pair(tmp_path / 'in/b_L.png', tmp_path / 'in/b_R.png', seed=2)
    argv = ['-opt', options, '--input', tmp_path / 'in', '--output', tmp_path / 'out']
    assert run([*argv, '--save-alpha', tmp_path / 'alpha.csv']) == 0
    rows = list(csv.DictReader((tmp_path / 'alpha.csv').open()))
    assert [(r['image'], r['dmssrm']) for r in rows] == [('a.png', '1'), ('b.png', '1')]
    expected_output(net, tmp_path / 'in/b_L.png', tmp_path / 'in/b_R.png')
    alpha = [float(rows[1][f'alpha_{j}']) for j in (1, 2, 3)]
    np.testing.assert_allclose(alpha, net.scale_weights[0][0].numpy(), atol=1e-6)
    assert sum(alpha) == pytest.approx(1, abs=1e-5)


def test_alpha_needs_a_network_with_dmssrms():
    with pytest.raises(ValueError, match='save-alpha: DMTNet has no DMSSRM'):
        Deblurrer(DMTNet(variant='T', num_transformer_blocks=1, upsampler_channels=16), record_alpha=True)


# ----------------------------------------------------------------------------------------------------------------
# Out of memory, precision, layout, compilation


class RaisesWhenLarge(nn.Module):
    """A pointwise network whose whole-image call fails like an allocator that ran out of memory."""

    def __init__(self, limit: int, error: Exception):
        super().__init__()
        self.mix = nn.Conv2d(6, 3, 1)
        self.limit = limit
        self.error = error
        self.sizes = []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise self.error
        return self.mix(x)


# one case a line, aligned by hand: clearer than the formatter's layout
@pytest.mark.parametrize('error', [
    torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB'),
    RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried to "
                 'allocate 99999999 bytes'),
])  # fmt: skip
def test_out_of_memory_falls_back_to_tiles(error, caplog):
    torch.manual_seed(0)
    net = RaisesWhenLarge(limit=256 * 256, error=error)
    x = torch.rand(1, 6, 300, 700)
    with caplog.at_level(logging.WARNING, logger='dmtnet_arch.tools.inference'):
        out = Deblurrer(net)(x, 'big.png')
    assert 'big.png: out of memory; retrying in 512 px tiles' in caplog.text
    assert 'retrying in 256 px tiles' in caplog.text  # 512 px tiles failed too; 256 px tiles fit
    assert net.sizes[:2] == [(300, 700), (300, 512)] and set(net.sizes[2:]) == {(256, 256)}
    torch.testing.assert_close(out, net.mix(x).detach(), rtol=1e-5, atol=1e-5)


def test_other_errors_are_not_taken_for_out_of_memory():
    assert not is_out_of_memory(RuntimeError('Expected all tensors to be on the same device'))
    with pytest.raises(ValueError, match='DMTNet expects'):
        Deblurrer(DMTNet(variant='T', num_transformer_blocks=1, upsampler_channels=16))(torch.rand(1, 3, 8, 8))


def test_bf16_and_channels_last_on_cpu_stay_close_to_fp32(weights):
    _, net = weights
    x = torch.rand(1, 6, 40, 56)
    reference = Deblurrer(net)(x)
    torch.testing.assert_close(Deblurrer(net, channels_last=True)(x), reference, rtol=1e-4, atol=1e-4)
    bf16 = Deblurrer(net, amp='bf16')(x)
    assert bf16.dtype == torch.float32 and (bf16 - reference).abs().mean() < 0.02


def test_compiled_network_gives_the_same_output_and_alpha(weights):
    """torch.compile's graph capture (the eager backend: inductor's C++ build takes minutes on this machine)."""
    _, net = weights
    x = torch.rand(1, 6, 40, 56)
    reference = Deblurrer(net, record_alpha=True)
    expected = reference(x)
    compiled = Deblurrer(net, compile='eager', record_alpha=True)
    torch.testing.assert_close(compiled(x), expected)
    np.testing.assert_allclose(compiled.mean_alpha(), reference.mean_alpha(), atol=1e-6)


def test_fp16_needs_a_gpu(weights):
    with pytest.raises(ValueError, match='fp16 needs a GPU'):
        Deblurrer(weights[1], amp='fp16')


def test_tiles_through_the_deblurrer_match_tiled_forward(weights):
    _, net = weights
    x = torch.rand(1, 6, 40, 72)
    with torch.no_grad():
        expected = tiled_forward(net, x, 32, 8)
    torch.testing.assert_close(Deblurrer(net, tile=32, tile_overlap=8)(x), expected)


def test_missing_parameter_key_is_named(tmp_path, weights):
    options, _ = weights
    write_pair(tmp_path / 'a_L.png', tmp_path / 'a_R.png')
    argv = one_pair_argv(options, tmp_path)
    with pytest.raises(KeyError, match=r"net\.pth: no 'params_x' in the checkpoint"):
        run([*argv, '--param-key', 'params_x'])


def test_relative_output_folder_leaves_no_temporary_files(tmp_path, weights, monkeypatch):
    options, _ = weights
    monkeypatch.chdir(tmp_path)
    write_pair(Path('a_L.png'), Path('a_R.png'))
    assert run(['-opt', options, '--left', 'a_L.png', '--right', 'a_R.png', '--output', 'sharp']) == 0
    assert [p.name for p in Path('sharp').iterdir()] == ['a.png']
    assert not [p for p in tmp_path.rglob('.*')]


def test_portrait_images_keep_their_shape(tmp_path, weights):
    options, net = weights
    write_pair(tmp_path / 'p_L.png', tmp_path / 'p_R.png', height=WIDTH, width=HEIGHT)
    argv = [
        '-opt',
        options,
        '--left',
        tmp_path / 'p_L.png',
        '--right',
        tmp_path / 'p_R.png',
        '--output',
        tmp_path / 'o',
    ]
    assert run(argv) == 0
    assert_output_matches(tmp_path / 'o/p.png', expected_output(net, tmp_path / 'p_L.png', tmp_path / 'p_R.png'))
