"""scripts/inference.py --backend onnxruntime against --backend torch on a tiny DMTNet: the same float32 outputs
(within 1e-4), whole and tiled; the same files written at 8 and 16 bits; the same error on a bad pair, the others
written; torch-only options refused by name; and a process that imports neither torch nor basicsr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.tools.inference import Deblurrer
from dmtnet_arch.tools.onnx_export import export_onnx
from dmtnet_arch.tools.onnx_inference import OnnxDeblurrer
from dmtnet_arch.utils.img_util import read_image, write_image
from tests.helpers import REPO, load_script

pytest.importorskip('onnxruntime')

ROOT = REPO
SCRIPT = ROOT / 'scripts' / 'inference.py'
NETWORK = {'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'num_rbm': 1, 'num_rm': 1}
HEIGHT, WIDTH = 40, 72


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """A tiny DMTNet-T as a checkpoint (torch backend) and as its ONNX export (onnxruntime backend)."""
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    net = DMTNet(**NETWORK).eval()
    torch.save({'params': net.state_dict()}, folder / 'net.pth')
    (folder / 'net.yml').write_text(
        'network_g:\n  type: DMTNet\n' + ''.join(f'  {k}: {v}\n' for k, v in NETWORK.items())
        + f'path:\n  pretrain_network_g: {folder / "net.pth"}\n'
    )  # fmt: skip
    export_onnx(net, folder / 'net.onnx', channels=6)
    return folder, net


def random_rgb(seed: int, bits: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    top, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    return np.random.default_rng(seed).integers(0, top + 1, (height, width, 3)).astype(dtype)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory) -> Path:
    """Pairs at 8 and 16 bits, and one bad pair (views of different sizes) between them."""
    folder = tmp_path_factory.mktemp('inputs')
    for index, bits in enumerate((16, 8)):
        write_image(folder / f'scene{index}_L.png', random_rgb(index, bits))
        write_image(folder / f'scene{index}_R.png', random_rgb(index + 10, bits))
    write_image(folder / 'bad_L.png', random_rgb(5, 16))
    write_image(folder / 'bad_R.png', random_rgb(6, 16, HEIGHT + 8))
    return folder


def run_script(argv, capsys) -> tuple[int, str]:
    module = load_script('inference')
    code = module.main([str(a) for a in argv] + ['--quiet'])
    return code, capsys.readouterr().err


@pytest.mark.parametrize('tile', [None, 32])
def test_onnxruntime_gives_torchs_float32_output(weights, tile):
    folder, net = weights
    lq = np.random.default_rng(0).random((1, 6, HEIGHT, WIDTH), dtype=np.float32)
    expected = Deblurrer(net, tile=tile, tile_overlap=8)(lq).numpy()
    onnx = OnnxDeblurrer(str(folder / 'net.onnx'), tile=tile, tile_overlap=8)
    assert onnx.channels == 6
    np.testing.assert_allclose(onnx(lq), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize('tile', [[], ['--tile', '32', '--tile-overlap', '8']])
def test_both_backends_write_the_same_files_and_report_the_same_bad_pair(weights, inputs, tmp_path, capsys, tile):
    folder, _ = weights
    code_torch, err_torch = run_script(['-opt', folder / 'net.yml', '--input', inputs, '--output', tmp_path / 't',
                                        '--device', 'cpu', *tile], capsys)  # fmt: skip
    code_onnx, err_onnx = run_script(['--backend', 'onnxruntime', '--weights', folder / 'net.onnx', '--input', inputs,
                                      '--output', tmp_path / 'o', *tile], capsys)  # fmt: skip
    assert code_torch == code_onnx == 1
    failures = [line for line in err_torch.splitlines() if 'bad_L.png' in line]
    assert failures and failures == [line for line in err_onnx.splitlines() if 'bad_L.png' in line]
    written = sorted(p.name for p in (tmp_path / 't').iterdir())
    assert written == sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['scene0.png', 'scene1.png']
    for name, dtype in (('scene0.png', np.uint16), ('scene1.png', np.uint8)):
        torch_image, onnx_image = read_image(tmp_path / 't' / name), read_image(tmp_path / 'o' / name)
        assert torch_image.dtype == onnx_image.dtype == dtype
        # 1e-4 on [0, 1] is 6.6 levels of 65535: the rounding to integers can differ by at most that, plus one
        assert np.abs(torch_image.astype(int) - onnx_image.astype(int)).max() <= 7


def test_torch_only_options_and_wrong_files_are_refused_by_name(weights, inputs, tmp_path, capsys):
    folder, _ = weights
    base = ['--backend', 'onnxruntime', '--input', inputs, '--output', tmp_path / 'o']
    with pytest.raises(ValueError, match='--backend onnxruntime does not take --amp'):
        run_script([*base, '--weights', folder / 'net.onnx', '--amp', 'bf16'], capsys)
    with pytest.raises(ValueError, match=r'net.pth: the onnxruntime backend runs an .onnx file; export'):
        run_script([*base, '--weights', folder / 'net.pth'], capsys)
    with pytest.raises(FileNotFoundError, match='missing.onnx: no such file'):
        run_script([*base, '--weights', tmp_path / 'missing.onnx'], capsys)
    (tmp_path / 'broken.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='broken.onnx: onnxruntime cannot load it'):
        run_script([*base, '--weights', tmp_path / 'broken.onnx'], capsys)
    with pytest.raises(ValueError, match='--device cuda: the onnxruntime backend runs on the CPU'):
        run_script([*base, '--weights', folder / 'net.onnx', '--device', 'cuda'], capsys)


CHILD = """
import json, runpy, sys
sys.argv = [{script!r}, *json.loads(sys.argv[1])]
code = None
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit as done:
    code = done.code
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'basicsr', 'torchvision', 'scipy', 'skimage'}})
print(json.dumps({{'code': code, 'heavy': heavy}}))
"""


@pytest.mark.slow  # a fresh interpreter
def test_the_onnxruntime_process_imports_neither_torch_nor_basicsr(weights, inputs, tmp_path):
    folder, _ = weights
    argv = ['--backend', 'onnxruntime', '--weights', str(folder / 'net.onnx'), '--input', str(inputs), '--output',
            str(tmp_path / 'o'), '--tile', '32', '--tile-overlap', '8', '--quiet']  # fmt: skip
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    done = subprocess.run(
        [sys.executable, '-c', CHILD.format(script=str(SCRIPT)), json.dumps(argv)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {'code': 1, 'heavy': []}, done.stderr[-2000:]  # 1: the bad pair; the others are written
    assert sorted(p.name for p in (tmp_path / 'o').iterdir()) == ['scene0.png', 'scene1.png']
    assert 'peak resident memory of the process' in done.stdout
