"""Each fix in dmtnet_arch/compat.py, and the start-up hook, shown against a plain BasicSR 1.4.2."""

import math
import subprocess
import sys

import pytest

PLAIN = {'DMTNET_NO_AUTOLOAD': '1'}


def run_python(code: str, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_plain_basicsr_import_is_broken_on_this_torchvision():
    result = run_python('import basicsr', PLAIN)
    assert result.returncode != 0
    assert 'functional_tensor' in result.stderr


def test_compat_makes_basicsr_importable():
    result = run_python(
        'from dmtnet_arch import compat; compat.apply(); import basicsr; print(basicsr.__version__)', PLAIN
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '1.4.2'


def test_shim_exposes_the_function_basicsr_needs():
    result = run_python(
        'import torch; from dmtnet_arch import compat; compat.apply();'
        'from torchvision.transforms.functional_tensor import rgb_to_grayscale;'
        'print(tuple(rgb_to_grayscale(torch.ones(3, 2, 2)).shape))',
        PLAIN,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '(1, 2, 2)'


@pytest.mark.parametrize('first', ['import basicsr', 'from basicsr.archs import build_network'])
def test_installed_startup_hook_registers_the_plugin_when_basicsr_comes_first(tmp_path, first):
    code = f'{first}\nfrom basicsr.utils.registry import ARCH_REGISTRY\nprint(ARCH_REGISTRY.get("DMTNet").__module__)'
    result = run_python(code, cwd=tmp_path)  # outside the checkout: the installed copy and its .pth
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'dmtnet_arch.archs.dmtnet_arch'


def test_resume_follows_the_yaml_schedule_when_total_iter_grows():
    import types

    import torch
    from basicsr.models.base_model import BaseModel
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR

    from dmtnet_arch import compat

    def optimizer_and_scheduler(periods):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return optimizer, CosineAnnealingRestartLR(optimizer, periods=periods, restart_weights=[1], eta_min=0)

    old_optimizer, old_scheduler = optimizer_and_scheduler([10])
    for _ in range(10):
        old_optimizer.step()
        old_scheduler.step()
    state = {'optimizers': [old_optimizer.state_dict()], 'schedulers': [old_scheduler.state_dict()]}

    optimizer, scheduler = optimizer_and_scheduler([20])
    model = types.SimpleNamespace(optimizers=[optimizer], schedulers=[scheduler],
                                  opt={'train': {'scheduler': {'periods': [20], 'restart_weights': [1]}}})  # fmt: skip
    BaseModel.resume_training(model, state)  # BasicSR's, then the plugin models' fix
    compat.restore_yaml_schedule(model)
    assert scheduler.last_epoch == 10
    optimizer.step()
    scheduler.step()  # crashes with the saved periods [10]: step 11 lies past them
    expected = 0.5 * (1 + math.cos(math.pi * 11 / 20))
    assert optimizer.param_groups[0]['lr'] == pytest.approx(expected)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    import types

    import torch

    from dmtnet_arch.models.dual_pixel_model import DualPixelModel

    net = torch.nn.Linear(2, 2)
    model = types.SimpleNamespace(opt={'rank': 0, 'path': {'models': str(tmp_path)}}, get_bare_model=lambda n: n)
    DualPixelModel.save_network(model, net, 'net_g', -1)
    target = tmp_path / 'net_g_latest.pth'
    saved = torch.load(target, weights_only=True)['params']

    real_save = torch.save

    def killed_mid_write(obj, file, *args, **kwargs):
        file.write(b'PK\x03\x04 truncated')  # the open temporary file (file_util.save_torch_atomically)
        raise OSError('killed while writing')

    monkeypatch.setattr(torch, 'save', killed_mid_write)
    with torch.no_grad():
        net.weight.add_(1)
    with pytest.raises(OSError, match='killed while writing'):
        DualPixelModel.save_network(model, net, 'net_g', -1)
    monkeypatch.setattr(torch, 'save', real_save)
    intact = torch.load(target, weights_only=True)['params']  # the last good checkpoint is still loadable
    torch.testing.assert_close(intact['weight'], saved['weight'])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net_g_latest.pth']  # no temporary file left behind
