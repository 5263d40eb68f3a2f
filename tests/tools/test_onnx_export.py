"""scripts/export_onnx.py: onnxruntime gives PyTorch's output within 1e-4, at odd sizes, dynamic and fixed."""

import pytest
import torch
from basicsr.archs import build_network

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.tools.onnx_export import export_onnx, parity_error
from tests.helpers import load_script

pytest.importorskip('onnxruntime', reason='the export extra: pip install .[export]')
NETWORK = {'variant': 'S', 'num_transformer_blocks': 2, 'upsampler_channels': 16, 'num_rbm': 1, 'num_rm': 1}


@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    return DMTNet(**NETWORK).eval()


def test_dynamic_export_matches_pytorch_at_several_odd_sizes(tmp_path, net):
    info = export_onnx(net, tmp_path / 'net.onnx', channels=6)
    assert info['dynamic'] and info['smallest_side'] == 33
    for height, width in [(45, 71), (33, 97), (64, 64)]:
        assert parity_error(net, tmp_path / 'net.onnx', torch.rand(1, 6, height, width)) < 1e-4


def test_fixed_size_export_matches_pytorch(tmp_path, net):
    info = export_onnx(net, tmp_path / 'fixed.onnx', channels=6, height=37, width=51)
    assert not info['dynamic']
    assert parity_error(net, tmp_path / 'fixed.onnx', torch.rand(1, 6, 37, 51)) < 1e-4


def test_script_exports_trained_weights_and_checks_them(tmp_path, net, capsys):
    torch.save({'params_ema': net.state_dict()}, tmp_path / 'net.pth')
    (tmp_path / 'net.yml').write_text(
        'network_g:\n  type: DMTNet\n' + ''.join(f'  {k}: {v}\n' for k, v in NETWORK.items())
    )
    script = load_script('export_onnx')
    argv = ['-opt', tmp_path / 'net.yml', '--weights', tmp_path / 'net.pth', '--output', tmp_path / 'm.onnx']
    assert script.main([str(a) for a in argv]) == 0
    printed = capsys.readouterr().out
    assert 'any H, W >= 33' in printed and 'opset 17' in printed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


@pytest.mark.parametrize(
    'network, channels',
    [
        ({'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1] * 4}, 6),
        ({'type': 'DPDNet', 'base_channels': 4}, 6),
        ({'type': 'IFAN', 'channels': 4, 'res_num': 1, 'iterations': 2}, 3),
    ],
)
def test_peers_export_with_dynamic_size_down_to_the_printed_bound(tmp_path, network, channels):
    torch.manual_seed(0)
    peer = build_network(dict(network)).eval()
    info = export_onnx(peer, tmp_path / 'peer.onnx', channels=channels)
    assert info['dynamic'] and info['input'].startswith(f'(N, {channels}, H, W)')
    smallest = info['smallest_side']
    assert smallest == peer.size_multiple // 2 + 1
    for height, width in [(smallest, smallest), (smallest + 2, 3 * smallest), (2 * peer.size_multiple, 37)]:
        assert parity_error(peer, tmp_path / 'peer.onnx', torch.rand(1, channels, height, width)) < 1e-4
