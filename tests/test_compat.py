"""Each fix in dmtnet_arch/compat.py, and the start-up hook, shown against a plain BasicSR 1.4.2."""

import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers the plugin in basicsr's registries)
from dmtnet_arch import compat
from tests.helpers import make_data, train_options

PLAIN = {'DMTNET_NO_AUTOLOAD': '1'}


def run_python(code: str, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_plain_basicsr_import_is_broken_on_this_torchvision():
    result = run_python('import basicsr', PLAIN)
    assert result.returncode != 0
    assert 'functional_tensor' in result.stderr


@pytest.mark.slow
def test_compat_makes_basicsr_importable():
    result = run_python(
        'from dmtnet_arch import compat; compat.apply(); import basicsr; print(basicsr.__version__)', PLAIN
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '1.4.2'


@pytest.mark.slow
def test_shim_exposes_the_function_basicsr_needs():
    result = run_python(
        'import torch; from dmtnet_arch import compat; compat.apply();'
        'from torchvision.transforms.functional_tensor import rgb_to_grayscale;'
        'print(tuple(rgb_to_grayscale(torch.ones(3, 2, 2)).shape))',
        PLAIN,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '(1, 2, 2)'


@pytest.mark.slow
@pytest.mark.parametrize('first', ['import basicsr', 'from basicsr.archs import build_network'])
def test_installed_startup_hook_registers_the_plugin_when_basicsr_comes_first(tmp_path, first):
    code = f'{first}\nfrom basicsr.utils.registry import ARCH_REGISTRY\nprint(ARCH_REGISTRY.get("DMTNet").__module__)'
    result = run_python(code, cwd=tmp_path)  # outside the checkout: the installed copy and its .pth
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'dmtnet_arch.archs.dmtnet_arch'


def test_resume_follows_the_yaml_schedule_when_total_iter_grows():
    import types

    from basicsr.models.base_model import BaseModel
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR

    def optimizer_and_scheduler(periods):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return optimizer, CosineAnnealingRestartLR(optimizer, periods=periods, restart_weights=[1], eta_min=0)

    old_optimizer, old_scheduler = optimizer_and_scheduler([10])
    for _ in range(10):
        old_optimizer.step()
        old_scheduler.step()
    state = {'optimizers': [old_optimizer.state_dict()], 'schedulers': [old_scheduler.state_dict()]}

    optimizer, scheduler = optimizer_and_scheduler([20])
    yaml_schedule = {'periods': [20], 'restart_weights': [1]}
    model = types.SimpleNamespace(
        optimizers=[optimizer], schedulers=[scheduler], opt={'train': {'scheduler': yaml_schedule}}
    )
    BaseModel.resume_training(model, state)  # BasicSR's, then the plugin models' fix
    compat.restore_yaml_schedule(model)
    assert scheduler.last_epoch == 10
    optimizer.step()
    scheduler.step()  # crashes with the saved periods [10]: step 11 lies past them
    expected = 0.5 * (1 + math.cos(math.pi * 11 / 20))
    assert optimizer.param_groups[0]['lr'] == pytest.approx(expected)


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    import types

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


def loader_options(data: Path, batch: int, world_size: int = 1, ratio: int = 1) -> dict:
    opt = train_options('batch', data, total_iter=1, save_freq=1, batch=batch)
    opt['datasets']['train'].update(phase='train', dataset_enlarge_ratio=ratio)
    opt.update(world_size=world_size, rank=0, dist=False, num_gpu=0)
    return opt


def test_training_refuses_fewer_samples_than_one_global_batch(tmp_path):
    import basicsr.train

    data = make_data(tmp_path / 'data', 3)
    logger = logging.getLogger('test_mistakes')
    for batch, world_size, global_batch in ((4, 1, 4), (2, 4, 8)):
        with pytest.raises(ValueError, match=rf'3 training samples .* fewer than one global batch of {global_batch} '):
            basicsr.train.create_train_val_dataloader(loader_options(data, batch, world_size), logger)
    train_loader = basicsr.train.create_train_val_dataloader(loader_options(data, 4, ratio=2), logger)[0]
    assert len(train_loader) == 1


def test_compat_patches_are_in_place():
    import basicsr.data
    import basicsr.test
    import basicsr.train

    from dmtnet_arch.models.dual_pixel_model import DualPixelModel

    assert DualPixelModel.load_network is compat.load_network_checked
    assert DualPixelModel.__mro__[1] is compat.PluginModelFixes
    assert getattr(basicsr.train.parse_options, 'checks_options', False)
    assert getattr(basicsr.test.parse_options, 'checks_options', False)
    assert getattr(basicsr.train.build_dataloader, 'checks_batch', False)
    assert getattr(basicsr.data.build_dataloader, 'checks_batch', False)


@pytest.mark.parametrize(
    ('argv', 'expected'),
    [
        (['train.py', '-opt', 'x.yml', '--local-rank=3'], ['train.py', '-opt', 'x.yml', '--local_rank=3']),
        (['train.py', '--local-rank', '1', '-opt', 'x.yml'], ['train.py', '--local_rank', '1', '-opt', 'x.yml']),
        (['train.py', '--local_rank=2'], ['train.py', '--local_rank=2']),
        (['train.py', '-opt', 'local-rank.yml'], ['train.py', '-opt', 'local-rank.yml']),
    ],
)
def test_dashed_local_rank_is_rewritten(argv, expected):
    compat.accept_dashed_local_rank(argv)
    assert argv == expected


def test_complete_states_skip_incomplete_and_temporary_files(tmp_path):
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    assert compat.complete_states(str(states), str(models)) == []
    assert compat.complete_states(str(tmp_path / 'absent'), str(models)) == []
    for it in (2, 4, 10):
        (states / f'{it}.state').write_bytes(b'x')
    for it in (2, 4):
        (models / f'net_g_{it}.pth').write_bytes(b'x')
    (models / 'net_g_10.pth.tmp123').write_bytes(b'x')  # the network of 10 was never completed
    (states / '12.state.tmp77').write_bytes(b'x')
    (models / 'net_g_12.pth').write_bytes(b'x')
    (states / 'latest.state').write_bytes(b'x')
    assert compat.complete_states(str(states), str(models)) == [str(states / '4.state'), str(states / '2.state')]
    # numeric order, not text order
    (states / '30.state').write_bytes(b'x')
    (models / 'net_g_30.pth').write_bytes(b'x')
    assert compat.complete_states(str(states), str(models))[0] == str(states / '30.state')
    # every network the model saves must be there
    assert compat.complete_states(str(states), str(models), ['net_g', 'net_d']) == []
