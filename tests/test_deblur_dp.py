"""scripts/deblur_dp.py: one dual-pixel pair in, the network's output as a 16-bit PNG out."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.checkpoint import load_network_weights

SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'deblur_dp.py'
NETWORK = {'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16}


def load_script():
    spec = importlib.util.spec_from_file_location('deblur_dp', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_rgb16(path: Path, rgb: np.ndarray):
    cv2.imwrite(str(path), cv2.cvtColor((rgb * 65535).round().astype(np.uint16), cv2.COLOR_RGB2BGR))


@pytest.fixture
def pair_and_weights(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.random((30, 45, 3)), rng.random((30, 45, 3))
    write_rgb16(tmp_path / 'L.png', left)
    write_rgb16(tmp_path / 'R.png', right)
    torch.manual_seed(0)
    net = DMTNet(**NETWORK).eval()
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'net.yml').write_text(
        'network_g:\n' + ''.join(f'  {k}: {v}\n' for k, v in {'type': 'DMTNet', **NETWORK}.items())
    )
    return tmp_path, net


@pytest.mark.parametrize('tile', [None, 32])
def test_output_is_the_network_applied_to_left_then_right(pair_and_weights, tile):
    folder, net = pair_and_weights
    argv = ['--left', str(folder / 'L.png'), '--right', str(folder / 'R.png'), '--weights', str(folder / 'net.pth'),
            '--opt', str(folder / 'net.yml'), '--out', str(folder / 'out.png'), '--device', 'cpu']  # fmt: skip
    if tile:
        argv += ['--tile', str(tile), '--tile-overlap', '8']
    load_script().main(argv)
    written = cv2.imread(str(folder / 'out.png'), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (30, 45, 3)
    left = cv2.imread(str(folder / 'L.png'), cv2.IMREAD_UNCHANGED)[..., ::-1] / 65535
    right = cv2.imread(str(folder / 'R.png'), cv2.IMREAD_UNCHANGED)[..., ::-1] / 65535
    lq = torch.from_numpy(np.concatenate([left, right], 2).transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        expected = net(lq) if tile is None else load_script().tiled_forward(net, lq, tile, 8)
    expected = (expected[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 65535).round()
    np.testing.assert_allclose(written[..., ::-1].astype(np.float64), expected, atol=2)


def test_views_of_different_sizes_name_both_files(pair_and_weights):
    folder, _ = pair_and_weights
    write_rgb16(folder / 'R.png', np.zeros((30, 44, 3)))
    with pytest.raises(ValueError, match=r'L\.png is .*R\.png is'):
        load_script().read_pair(str(folder / 'L.png'), str(folder / 'R.png'))


def test_missing_parameter_key_is_named(pair_and_weights):
    folder, net = pair_and_weights
    with pytest.raises(KeyError, match=r"net\.pth: no 'params_ema' in the checkpoint"):
        load_network_weights(net, str(folder / 'net.pth'), 'params_ema')


def test_output_name_without_a_folder_is_written_in_the_working_directory(pair_and_weights, monkeypatch):
    folder, _ = pair_and_weights
    monkeypatch.chdir(folder)
    load_script().main(['--left', 'L.png', '--right', 'R.png', '--weights', 'net.pth', '--opt', 'net.yml',
                        '--out', 'IMG_sharp.png', '--device', 'cpu'])  # fmt: skip
    assert cv2.imread('IMG_sharp.png', cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert not [p for p in folder.iterdir() if p.name.startswith('.')]
