"""scripts/leaderboard.py on a tiny synthetic set with every network the plugin registers."""

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.data.synthetic_dp import generate_dataset
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr
from dmtnet_arch.metrics.lpips_metric import lpips_availability
from dmtnet_arch.tools.complexity import count_macs
from dmtnet_arch.tools.published import PUBLISHED_TABLE1
from dmtnet_arch.tools.short_training import matching_test_options
from dmtnet_arch.utils.options import read_option_file as read_options
from dmtnet_arch.utils.options import write_option_file
from tests.helpers import REPO, eval_options, make_data, write_yaml

# the DMTNet rows use a tiny DMTNet so that the test stays fast; peers run as their shipped test options define them
TINY_DMTNET = {'type': 'DMTNet', 'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'embed_dim': 24}


def plugin_archs() -> list[str]:
    return sorted(name for name, obj in ARCH_REGISTRY._obj_map.items() if obj.__module__.startswith('dmtnet_arch.'))


def shipped_test_options() -> dict:
    """The first options/test_*.yml of each network type (name order)."""
    found = {}
    for path in sorted((REPO / 'options').glob('test_*.yml')):
        found.setdefault(read_options(path)['network_g']['type'], read_options(path))
    return found


def tiny_dmtnet() -> DMTNet:
    return DMTNet(**{k: v for k, v in TINY_DMTNET.items() if k != 'type'})


@pytest.fixture(scope='module')
def board(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('board')
    data = generate_dataset(tmp / 'data', count=2, size=32, seed=3, progress=False)
    categories = tmp / 'categories.txt'
    categories.write_text('images 2\nindoor 0\noutdoor 1\n')
    shipped = shipped_test_options()
    weights = tmp / 'tiny_dmtnet.pth'
    torch.manual_seed(1)
    torch.save({'params': tiny_dmtnet().state_dict()}, weights)

    def option_file(stem: str, test_opt: dict, network: dict, weights_path: Path) -> Path:
        opt = matching_test_options(test_opt, {'network_g': network, 'manual_seed': 0}, stem, data, weights_path)
        opt['datasets']['test']['category_file'] = str(categories)
        return write_option_file(tmp / f'{stem}.yml', opt)

    files = [
        option_file('tiny_trained', shipped['DMTNet'], TINY_DMTNET, weights),
        option_file('tiny_untrained', shipped['DMTNet'], TINY_DMTNET, tmp / 'missing.pth'),
    ]
    files += [
        option_file(f'peer_{arch}', opt, opt['network_g'], tmp / 'missing.pth')
        for arch, opt in shipped.items()
        if arch != 'DMTNet'
    ]
    broken = read_options(files[0])
    broken['name'] = 'broken_data'
    broken['datasets']['test']['dataroot_gt'] = str(tmp / 'no_such_folder')
    files.append(write_option_file(tmp / 'broken_data.yml', broken))

    out = tmp / 'out'
    command = [
        sys.executable,
        REPO / 'scripts' / 'leaderboard.py',
        '--out',
        out,
        '--published',
        '--speed-size',
        '40x48',
    ]
    for path in files:
        command += ['-opt', path]
    done = subprocess.run([str(c) for c in command], cwd=tmp, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    with open(out / 'leaderboard.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    return {'out': out, 'rows': rows, 'data': data, 'weights': weights, 'shipped': shipped, 'files': files}


@pytest.mark.slow
def test_every_plugin_network_has_a_row_then_the_published_rows(board):
    assert set(plugin_archs()) <= set(board['shipped']), 'a registered network has no options/test_*.yml'
    rows = board['rows']
    measured = [row for row in rows if row['source'].startswith('measured')]
    assert len(measured) == len(board['files'])
    labels = [row['model'].split(' (')[0] for row in measured[2:-1]]
    assert labels == [arch for arch in board['shipped'] if arch != 'DMTNet']
    published = rows[len(measured) :]
    assert [row['model'] for row in published] == [entry[0] for entry in PUBLISHED_TABLE1]
    assert all(row['source'] == 'published (DMTNet paper, Table 1)' for row in published)
    restormer = next(row for row in published if row['model'] == 'Restormer')
    table1 = '26.66', '26.13', '4059.08'  # PSNR, params (M), GMACs
    assert (restormer['combined PSNR'], restormer['params (M)'], restormer['GMACs @1680x1120']) == table1


@pytest.mark.slow
def test_trained_row_equals_the_metrics_computed_directly(board):
    row = board['rows'][0]
    assert row['weights'] == str(board['weights'])
    net = tiny_dmtnet().eval()
    net.load_state_dict(torch.load(board['weights'], weights_only=True)['params'])
    psnrs = []
    for name in ('000000', '000001'):
        views = [
            cv2.imread(str(board['data'] / v / f'{name}.png'), cv2.IMREAD_UNCHANGED)[..., ::-1] / 65535.0
            for v in ('inputL', 'inputR', 'target')
        ]
        lq = torch.from_numpy(np.concatenate(views[:2], axis=2).transpose(2, 0, 1).copy()).float()[None]
        with torch.no_grad():
            psnrs.append(calculate_dp_psnr(net(lq)[0].clamp(0, 1), views[2]))  # as the model clamps it
    assert float(row['indoor PSNR']) == pytest.approx(psnrs[0], abs=0.01)
    assert float(row['outdoor PSNR']) == pytest.approx(psnrs[1], abs=0.01)
    assert float(row['combined PSNR']) == pytest.approx(np.mean(psnrs), abs=0.01)
    assert row['protocol'] == '16bit'
    assert float(row['params (M)']) == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6, abs=0.01)
    assert float(row['GMACs @1680x1120']) == pytest.approx(count_macs(net, (1, 6, 1120, 1680)) / 1e9, abs=0.1)
    assert float(row['latency (ms/image)']) > 0 and float(row['peak memory (MiB)']) > 0
    assert row['test image size'] == '32x32'
    assert float(row['latency @48x40 (ms)']) > 0 and float(row['peak memory @48x40 (MiB)']) > 0


@pytest.mark.slow
def test_untrained_rows_keep_complexity_and_speed_and_say_untrained(board):
    measured = [row for row in board['rows'] if row['source'].startswith('measured')]
    for row in measured[1:-1]:
        assert row['weights'].startswith('untrained (no file ')
        for group in ('indoor', 'outdoor', 'combined'):
            for metric in ('PSNR', 'SSIM', 'MAE'):
                assert row[f'{group} {metric}'].endswith(' (untrained)')
        assert float(row['params (M)']) > 0 and float(row['GMACs @1680x1120']) > 0
        assert float(row['latency (ms/image)']) > 0


@pytest.mark.slow
def test_a_broken_option_file_is_a_failed_row_and_loses_no_other(board):
    broken = [row for row in board['rows'] if row['model'] == 'broken_data']
    assert len(broken) == 1 and broken[0]['weights'].startswith('failed: ')
    assert 'no_such_folder' in broken[0]['weights']


@pytest.mark.slow
def test_markdown_header_lpips_and_figure(board):
    text = (board['out'] / 'leaderboard.md').read_text()
    assert 'Machine: CPU only' in text or 'CUDA' in text
    assert 'Metric protocol:' in text
    available, reason = lpips_availability()
    if not available:
        assert f'LPIPS: unavailable: {reason}' in text
        assert all(row['combined LPIPS'] == 'unavailable' for row in board['rows'][:2])
    assert text.count('\n| ') == len(board['rows']) + 1  # header row plus one per model
    figure = cv2.imread(str(board['out'] / 'psnr_vs_params.png'))
    assert figure is not None and figure.shape[1] > 2 * figure.shape[0] * 0.9  # two panels side by side


class FakeLpipsNetwork(torch.nn.Module):
    """Stands in for lpips.LPIPS: returns the mean absolute difference of its [-1, 1] inputs."""

    def __init__(self, net, verbose):
        super().__init__()
        assert net == 'alex'

    def forward(self, a, b):
        assert a.min() >= -1 and a.max() <= 1 and a.shape[:2] == (1, 3)
        return (a - b).abs().mean().view(1, 1, 1, 1)


def test_lpips_only_with_the_package_and_its_backbone_weights_on_the_machine(tmp_path, monkeypatch):
    import types

    from dmtnet_arch.metrics import lpips_metric

    monkeypatch.setitem(sys.modules, 'lpips', None)  # import fails
    assert lpips_metric.lpips_availability() == (False, 'the lpips package is not installed (pip install lpips)')
    monkeypatch.setitem(sys.modules, 'lpips', types.SimpleNamespace(LPIPS=FakeLpipsNetwork))
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    available, reason = lpips_metric.lpips_availability()
    assert not available and str(tmp_path / 'checkpoints') in reason and 'nothing is downloaded' in reason
    (tmp_path / 'checkpoints').mkdir()
    (tmp_path / 'checkpoints' / 'alexnet-owt-7be5be79.pth').write_bytes(b'')
    assert lpips_metric.lpips_availability()[0]
    lpips_metric.lpips_network.cache_clear()
    try:
        a, b = torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.25)
        assert lpips_metric.calculate_dp_lpips(a, b, better='lower') == pytest.approx(0.5)  # 0.25 in [-1, 1] units
        with pytest.raises(ValueError, match='Unknown metric options'):
            lpips_metric.calculate_dp_lpips(a, b, protocol='16bit')
    finally:
        lpips_metric.lpips_network.cache_clear()


def test_short_training_keeps_the_model_and_replaces_data_and_budget(tmp_path):
    from dmtnet_arch.tools.short_training import Budget, short_training_options

    official = read_options(REPO / 'options' / 'train_DMTNet_B.yml')
    official['datasets']['train'].update(mini_batch_sizes=[8, 4], iters=[10, 10], gt_sizes=[256, 512])
    budget = Budget(seconds=60, patch=48, batch=3, seed=7)
    opt = short_training_options(official, 'short_B', tmp_path / 'data', budget)
    train_set = opt['datasets']['train']
    assert list(opt['datasets']) == ['train'] and 'val' not in opt
    assert opt['network_g'] == official['network_g'] and opt['model_type'] == official['model_type']
    assert opt['train']['pixel_opt'] == official['train']['pixel_opt']
    assert opt['train']['optim_g'] == official['train']['optim_g']  # its own optimizer and learning rate
    assert short_training_options(official, 'x', tmp_path, Budget(lr=3e-4))['train']['optim_g']['lr'] == 3e-4
    assert opt['train']['scheduler']['type'] == 'MultiStepRestartLR' and opt['train']['scheduler']['milestones'] == []
    assert (train_set['gt_size'], train_set['batch_size_per_gpu'], opt['manual_seed']) == (48, 3, 7)
    assert not {'mini_batch_sizes', 'iters', 'gt_sizes', 'dataroot_dpdd'} & set(train_set)
    assert train_set['dataroot_lqC'] == str(tmp_path / 'data' / 'inputC')
    assert opt['logger']['save_checkpoint_freq'] == 1  # the newest network is kept when the clock stops training
    tested = matching_test_options(
        read_options(REPO / 'options' / 'test_DMTNet_B.yml'), opt, 'short_B_test', tmp_path / 'test', tmp_path / 'w.pth'
    )
    assert tested['network_g'] == opt['network_g'] and tested['path']['pretrain_network_g'] == str(tmp_path / 'w.pth')
    assert tested['val']['metrics'] == read_options(REPO / 'options' / 'test_DMTNet_B.yml')['val']['metrics']
    assert 'category_file' not in tested['datasets']['test']
    assert tested['datasets']['test']['dataroot_gt'] == str(tmp_path / 'test' / 'target')


@pytest.mark.slow
def test_leaderboard_keeps_two_option_files_of_one_network_and_name_apart(tmp_path, checkpoint):
    from dmtnet_arch.tools.leaderboard import run_leaderboard

    data = make_data(tmp_path / 'data', 2)
    files = []
    for folder, weights in (('a', checkpoint), ('b', None)):
        opt = eval_options('same_name', data, weights)
        opt['path']['allow_random_weights'] = weights is None
        (tmp_path / folder).mkdir()
        files.append(write_yaml(tmp_path / folder / 'test.yml', opt))
    broken = eval_options('broken', data, checkpoint)
    broken['datasets']['test_1']['dataroot_gt'] = str(tmp_path / 'no_such_folder')
    files.append(write_yaml(tmp_path / 'broken.yml', broken))
    table = run_leaderboard(files, tmp_path / 'out')
    assert [row['model'] for row in table] == [f'DMTNet-T ({files[0]})', f'DMTNet-T ({files[1]})', 'broken']
    assert table[0]['weights'] == str(checkpoint) and table[1]['weights'].startswith('untrained')
    assert table[0]['combined PSNR'] != table[1]['combined PSNR'].removesuffix(' (untrained)')
    for folder in ('01_test', '02_test'):  # each row's per-image results kept, none archived
        assert (tmp_path / 'out/runs' / folder / 'results/same_name/metrics_tiny_test.csv').is_file()
    assert not list((tmp_path / 'out/runs').rglob('*_archived_*'))
    assert table[2]['weights'].startswith('failed: ') and 'no_such_folder' in table[2]['weights']


# one case a line, aligned by hand: clearer than the formatter's layout
@pytest.mark.parametrize(
    ('stderr', 'reason'),
    [('Traceback (most recent call last):\n  File "x.py"\nValueError: x.png: bad\nTesting:  50%|#####     | 1/2\r',
      'ValueError: x.png: bad'),
     ('EvaluationError: Evaluating tiny failed\n\rTesting: 100%|##########| 2/2\r\n',
      'EvaluationError: Evaluating tiny failed')],
)  # fmt: skip
def test_a_failed_leaderboard_row_shows_the_exception_not_a_progress_bar(stderr, reason):
    from dmtnet_arch.tools.leaderboard import failure_reason

    assert failure_reason(stderr) == reason
