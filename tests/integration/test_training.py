"""Training and testing through the entries and BasicSR's own pipelines, on CPU with tiny data.

Covers checkpoints, resuming (from another directory and after SIGKILL), CPU data-parallel runs (torchrun and
torch.distributed.launch), an unmodified BasicSR toolbox finding the plugin, the test entry's CSV files and
16-bit outputs, skipping non-finite steps and clear option errors.

The entries write ``experiments/<name>`` and ``results/<name>`` under the repository; every test uses a unique
name and removes what it created.
"""

import importlib.util
import logging
import math
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers the plugin in basicsr's registries)
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr
from dmtnet_arch.utils.checkpoint import read_training_state
from tests.helpers import (
    DDP_WORKER,
    NETWORK,
    NETWORK_S,
    PYTHON,
    REPO,
    SIZE,
    TEST_ENTRY,
    TRAIN_ENTRY,
    basicsr_toolbox,
    check_ok,
    check_tiny_test_metrics,
    eval_options,
    free_port,
    last_line,
    load_params,
    make_data,
    read_csv,
    remove_outputs,
    run,
    temp_files,
    torchrun,
    train_options,
    train_until_a_state_then_sigkill,
    unique_name,
    write_yaml,
)

# ---------------------------------------------------------------------------------------------------------------
# checkpoints, and resuming equals training straight through

# Iterations before resuming; one image, batch 1: one iteration per epoch, so N is a multiple of it. BasicSR resumes
# at the start of the epoch it saved in and replays that epoch's sampler order; with a batch holding the whole
# dataset, that order only permutes the batch (which alone moves the weights by ~2e-7 with two images), and with one
# image the resumed and the straight run see exactly the same data.
N = 2


@pytest.fixture(scope='module')
def resume_runs(tmp_path_factory):
    """Run A: N iterations from the repo, then --auto_resume to 2N from another directory. Run B: 2N straight."""
    tmp = tmp_path_factory.mktemp('resume')
    data = make_data(tmp / 'data', 1)
    resumed, straight = unique_name('resumed'), unique_name('straight')
    runs = {'tmp': tmp, 'resumed': resumed, 'straight': straight}
    try:
        first = run(
            [PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp / 'a1.yml', train_options(resumed, data, N, N, batch=1))], REPO
        )
        check_ok(first)
        runs['first'] = first
        elsewhere = tmp / 'elsewhere'
        elsewhere.mkdir()
        second_yml = write_yaml(tmp / 'a2.yml', train_options(resumed, data, 2 * N, N, batch=1))
        second = run([PYTHON, TRAIN_ENTRY, '-opt', second_yml, '--auto_resume'], elsewhere)
        check_ok(second)
        runs['second'] = second
        runs['elsewhere'] = elsewhere
        straight_run = run(
            [PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp / 'b.yml', train_options(straight, data, 2 * N, N, batch=1))],
            REPO,
        )
        check_ok(straight_run)
        yield runs
    finally:
        remove_outputs(REPO, resumed)
        remove_outputs(REPO, straight)


@pytest.mark.slow
def test_training_writes_loadable_checkpoints_and_no_temp_files(resume_runs):
    experiment = REPO / 'experiments' / resume_runs['straight']
    network = DMTNet(**{k: v for k, v in NETWORK.items() if k != 'type'})
    for it in (N, 2 * N):
        params = load_params(experiment / 'models' / f'net_g_{it}.pth')
        network.load_state_dict(params, strict=True)  # every key, every shape
        state = read_training_state(str(experiment / 'training_states' / f'{it}.state'))  # weights_only=True
        assert state['iter'] == it
        assert len(state['optimizers']) == 1 and state['optimizers'][0]['state']
        assert len(state['schedulers']) == 1
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == [f'{N}.state', f'{2 * N}.state']
    assert temp_files(experiment) == []
    # training changed the weights between the two checkpoints
    first, last = (
        load_params(experiment / 'models' / f'net_g_{N}.pth'),
        load_params(experiment / 'models' / f'net_g_{2 * N}.pth'),
    )
    assert max((first[k] - last[k]).abs().max().item() for k in first) > 1e-5


@pytest.mark.slow
def test_auto_resume_from_another_directory_equals_training_straight_through(resume_runs):
    resumed, straight = resume_runs['resumed'], resume_runs['straight']
    log = resume_runs['second'].stderr
    assert re.search(rf'Resuming training from epoch: \d+, iter: {N}\.', log), log[-3000:]
    assert re.search(rf'Start training from epoch: \d+, iter: {N}\n', log)
    assert re.search(rf'iter:\s+{N + 1},', log) and not re.search(r'iter:\s+1,', log)
    # the resumed run did not archive the experiment it resumed, and wrote nothing under its own directory
    assert list((REPO / 'experiments').glob(f'{resumed}_archived_*')) == []
    assert not (resume_runs['elsewhere'] / 'experiments').exists()
    models = REPO / 'experiments' / resumed / 'models'
    assert (models / f'net_g_{N}.pth').is_file() and (models / f'net_g_{2 * N}.pth').is_file()
    assert temp_files(REPO / 'experiments' / resumed) == []

    a = load_params(models / f'net_g_{2 * N}.pth')
    b = load_params(REPO / 'experiments' / straight / 'models' / f'net_g_{2 * N}.pth')
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= 1e-6, f'resumed and straight weights differ by {worst}'
    # the comparison is not vacuous: the resumed iterations moved the weights
    at_n = load_params(models / f'net_g_{N}.pth')
    assert max((a[k] - at_n[k]).abs().max().item() for k in a) > 1e-5
    # the scheduler was restored: the rate halved after iteration 3 in both runs
    state = read_training_state(str(REPO / 'experiments' / resumed / 'training_states' / f'{2 * N}.state'))
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(5e-4)


# ---------------------------------------------------------------------------------------------------------------
# a run killed with SIGKILL resumes from its last complete checkpoint


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path, new_name):
    name = new_name('killed')
    data = make_data(tmp_path / 'data', 2)
    experiment = REPO / 'experiments' / name
    yml = write_yaml(tmp_path / 'long.yml', train_options(name, data, total_iter=100000, save_freq=2))
    last = train_until_a_state_then_sigkill([PYTHON, TRAIN_ENTRY, '-opt', yml], REPO, experiment, tmp_path / 'k.log')

    short = write_yaml(tmp_path / 'short.yml', train_options(name, data, total_iter=last + 2, save_freq=2))
    result = run([PYTHON, TRAIN_ENTRY, '-opt', short, '--auto_resume'], REPO)
    check_ok(result)
    assert re.search(rf'Resuming training from epoch: \d+, iter: {last}\.', result.stderr), result.stderr[-3000:]
    assert re.search(rf'iter:\s+{last + 1},', result.stderr)  # the next iteration, not iteration 1
    assert not re.search(r'iter:\s+1,', result.stderr)
    assert (experiment / 'models' / f'net_g_{last + 2}.pth').is_file()
    assert (experiment / 'training_states' / f'{last + 2}.state').is_file()
    assert list((REPO / 'experiments').glob(f'{name}_archived_*')) == []


@pytest.mark.slow
def test_resume_with_raised_total_iter_follows_the_new_cosine_periods(tmp_path, new_name):
    """BasicSR restores the saved periods too: without the plugin's fix, iteration 3 runs at eta_min (the end of
    the saved period of 2) and iteration 4 crashes (the saved periods have run out)."""
    name = new_name('cosine')
    data = make_data(tmp_path / 'data', 1)
    base_lr, eta_min = 1e-3, 1e-6

    def options(total_iter):
        scheduler = {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter], 'restart_weights': [1]}
        opt = train_options(name, data, total_iter=total_iter, save_freq=1, batch=1)
        opt['train']['scheduler'] = {**scheduler, 'eta_min': eta_min}
        return write_yaml(tmp_path / f'cosine{total_iter}.yml', opt)

    check_ok(run([PYTHON, TRAIN_ENTRY, '-opt', options(2)], tmp_path))
    result = run([PYTHON, TRAIN_ENTRY, '-opt', options(4), '--auto_resume'], tmp_path)
    check_ok(result)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', result.stderr)
    states = REPO / 'experiments' / name / 'training_states'
    for it in (3, 4):  # the rate of the new period of 4 at the saved position (BasicSR steps from iteration 2 on)
        expected = eta_min + 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * (it - 1) / 4))
        state = read_training_state(str(states / f'{it}.state'))
        assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# data-parallel training on CPU (gloo), through BasicSR's own option parsing


def worker_options(name: str) -> dict:
    opt = train_options(name, Path('/unused'), total_iter=3, save_freq=3)
    opt['datasets'] = {}
    opt['network_g'] = dict(NETWORK_S)
    return opt


@pytest.mark.slow
@pytest.mark.parametrize('launcher', ['torchrun', 'torch.distributed.launch'])
def test_two_cpu_ranks_end_with_identical_weights(tmp_path, launcher):
    yml = write_yaml(tmp_path / 'ddp.yml', worker_options(unique_name('ddp')))
    port = free_port()
    if launcher == 'torchrun':
        cmd = [*torchrun(), '--nproc_per_node=2', f'--master_port={port}']
    else:
        if importlib.util.find_spec('torch.distributed.launch') is None:
            pytest.skip('torch.distributed.launch is removed in this torch version')
        cmd = [PYTHON, '-m', 'torch.distributed.launch', '--nproc_per_node=2', f'--master_port={port}']
    result = run([*cmd, DDP_WORKER, '-opt', yml, '--launcher', 'pytorch'], tmp_path, {'DDP_WORKER_OUT': str(tmp_path)})
    check_ok(result)
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in (0, 1)]
    for r, info in enumerate(ranks):
        assert (info['rank'], info['world_size'], info['dist']) == (r, 2, True)
        assert info['backend'] == 'gloo'
        assert info['wrapped'] == 'DistributedDataParallel'
        assert not any(arg.startswith('--local-rank') for arg in info['argv_parsed'])
        if launcher == 'torch.distributed.launch':
            # the launcher passed the dashed spelling, which BasicSR's parser alone would refuse
            assert f'--local-rank={r}' in info['argv_as_launched']
            assert f'--local_rank={r}' in info['argv_parsed']
    assert ranks[0]['batch_checksum'] != ranks[1]['batch_checksum']  # each rank trained on its own data
    assert torch.equal(ranks[0]['initial'], ranks[1]['initial'])  # DDP broadcast rank 0's weights
    difference = (ranks[0]['final'] - ranks[1]['final']).abs().max().item()
    assert difference <= 1e-6, f'ranks diverged by {difference}'
    assert (ranks[0]['final'] - ranks[0]['initial']).abs().max().item() > 1e-5  # and training moved them


@pytest.mark.slow
def test_train_entry_under_torchrun(tmp_path, new_name):
    name = new_name('torchrun')
    data = make_data(tmp_path / 'data', 2)
    yml = write_yaml(tmp_path / 'dist.yml', train_options(name, data, total_iter=2, save_freq=2, batch=1))
    cmd = [
        *torchrun(),
        '--nproc_per_node=2',
        f'--master_port={free_port()}',
        TRAIN_ENTRY,
        '-opt',
        yml,
        '--launcher',
        'pytorch',
    ]
    result = run(cmd, REPO)
    check_ok(result)
    assert 'World size (gpu number): 2' in result.stderr
    assert 'terminate called' not in result.stderr + result.stdout  # every rank left its process group
    experiment = REPO / 'experiments' / name
    network = DMTNet(**{k: v for k, v in NETWORK.items() if k != 'type'})
    network.load_state_dict(load_params(experiment / 'models' / 'net_g_2.pth'), strict=True)  # no 'module.' prefix
    assert (experiment / 'training_states' / '2.state').is_file()
    assert temp_files(experiment) == []


# ---------------------------------------------------------------------------------------------------------------
# BasicSR's own, unmodified train.py and test.py find the plugin through the installed start-up hook


@pytest.mark.slow
def test_unmodified_basicsr_toolbox_trains_and_tests(tmp_path):
    toolbox = basicsr_toolbox(tmp_path / 'toolbox', ('train.py', 'test.py'))
    data = make_data(tmp_path / 'data', 2)
    name = unique_name('toolbox')
    train_yml = write_yaml(tmp_path / 'train.yml', train_options(name, data, total_iter=2, save_freq=2))
    result = run([PYTHON, 'basicsr/train.py', '-opt', train_yml], toolbox)
    check_ok(result)
    checkpoint = toolbox / 'experiments' / name / 'models' / 'net_g_2.pth'
    assert checkpoint.is_file()
    assert 'Network [DMTNet] is created.' in result.stderr
    assert 'Dataset [DualPixelDataset] - tiny_train is built.' in result.stderr
    assert 'Model [DualPixelModel] is created.' in result.stderr
    assert not (REPO / 'experiments' / name).exists()

    test_name = unique_name('toolbox_test')
    test_yml = write_yaml(tmp_path / 'test.yml', eval_options(test_name, data, checkpoint))
    result = run([PYTHON, 'basicsr/test.py', '-opt', test_yml], toolbox)
    check_ok(result)
    assert f'Loading DMTNet model from {checkpoint}' in result.stderr
    check_tiny_test_metrics(toolbox / 'results' / test_name / 'metrics_tiny_test.csv')
    assert not (REPO / 'results' / test_name).exists()


# ---------------------------------------------------------------------------------------------------------------
# the test entry: per-image CSV with categories, summary, 16-bit outputs


@pytest.mark.slow
def test_test_entry_writes_metrics_with_categories_and_16bit_images(tmp_path, new_name):
    height, width = 40, 56  # not a multiple of the network's size: padded and cropped back
    data = make_data(tmp_path / 'data', 4, height, width, seed=3)
    categories = tmp_path / 'categories.txt'
    categories.write_text('# first two are indoor\nimages 4\nindoor 0-1\n')
    checkpoint = tmp_path / 'net_g.pth'
    torch.manual_seed(0)
    torch.save({'params': DMTNet(**{k: v for k, v in NETWORK.items() if k != 'type'}).state_dict()}, checkpoint)
    name = new_name('test_entry')
    yml = write_yaml(
        tmp_path / 'test.yml', eval_options(name, data, checkpoint, save_img=True, category_file=str(categories))
    )
    result = run([PYTHON, TEST_ENTRY, '-opt', yml], tmp_path)
    check_ok(result)

    results = REPO / 'results' / name
    header, rows = read_csv(results / 'metrics_tiny_test.csv')
    assert header == ['image', 'category', 'psnr', 'ssim', 'mae']
    expected = [('000', 'indoor'), ('001', 'indoor'), ('002', 'outdoor'), ('003', 'outdoor')]
    assert [(row['image'], row['category']) for row in rows] == expected

    summary_header, summary = read_csv(results / 'metrics_tiny_test_summary.csv')
    assert summary_header == ['group', 'images', 'psnr (16bit)', 'ssim (16bit)', 'mae (16bit)']
    by_group = {row['group']: row for row in summary}
    assert set(by_group) == {'indoor', 'outdoor', 'combined'}
    assert [int(by_group[g]['images']) for g in ('indoor', 'outdoor', 'combined')] == [2, 2, 4]
    for group, members in (('indoor', rows[:2]), ('outdoor', rows[2:]), ('combined', rows)):
        for metric in ('psnr', 'ssim', 'mae'):
            expected = np.mean([float(row[metric]) for row in members])
            assert float(by_group[group][f'{metric} (16bit)']) == pytest.approx(expected, abs=1e-5)

    for row in rows:
        saved = cv2.imread(
            str(results / 'visualization' / 'tiny_test' / f'{row["image"]}_{name}.png'), cv2.IMREAD_UNCHANGED
        )
        assert saved is not None
        assert saved.dtype == np.uint16
        assert saved.shape == (height, width, 3)
        # the metric was taken on exactly what was written: recompute it from the two PNGs
        target = cv2.imread(str(data / 'target' / f'{row["image"]}.png'), cv2.IMREAD_UNCHANGED)
        psnr = calculate_dp_psnr(saved[..., ::-1] / 65535.0, target[..., ::-1] / 65535.0)
        assert psnr == pytest.approx(float(row['psnr']), abs=1e-3)
    assert temp_files(results) == []


# ---------------------------------------------------------------------------------------------------------------
# non-finite losses are skipped, then stop training with a clear message


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.net_g.parameters()])


def test_nonfinite_loss_skips_steps_then_stops(tmp_path, monkeypatch):
    from basicsr.models import build_model
    from basicsr.utils.options import parse_options

    opt_dict = worker_options(unique_name('nonfinite'))
    opt_dict['train']['max_nonfinite_steps'] = 3
    yml = write_yaml(tmp_path / 'nonfinite.yml', opt_dict)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml)])
    opt, _ = parse_options(str(tmp_path), is_train=True)
    model = build_model(opt)
    assert type(model).__name__ == 'DualPixelModel'
    handler = ListHandler()
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    try:
        generator = torch.Generator().manual_seed(0)

        def batch(nan: bool) -> dict:
            lq = torch.rand(1, 6, SIZE, SIZE, generator=generator)
            if nan:
                lq[0, 0, 3, 5] = float('nan')
            return {'lq': lq, 'gt': torch.rand(1, 3, SIZE, SIZE, generator=generator)}

        def step(it: int, nan: bool):
            model.feed_data(batch(nan))
            model.optimize_parameters(it)

        start = flat(model)
        step(1, nan=True)
        step(2, nan=True)
        assert torch.equal(flat(model), start)  # both updates dropped
        assert not model.optimizer_g.state  # Adam did not even count them
        assert len(handler.messages) == 2
        assert 'Iteration 1' in handler.messages[0] and 'skipped' in handler.messages[0]
        assert '2 in a row, limit 3' in handler.messages[1]

        step(3, nan=False)  # a finite step updates and resets the count
        after_finite = flat(model)
        assert not torch.equal(after_finite, start)
        assert torch.isfinite(after_finite).all()
        assert len(handler.messages) == 2

        step(4, nan=True)
        step(5, nan=True)  # would be the 4th in a row without the reset
        assert torch.equal(flat(model), after_finite)
        with pytest.raises(RuntimeError) as error:
            step(6, nan=True)
        message = str(error.value)
        assert 'iteration 6' in message
        assert '3 iterations in a row' in message
        assert 'lr' in message and 'grad_clip' in message
        assert torch.equal(flat(model), after_finite)
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------------------------------------------------------
# wrong options give errors that say what is wrong


@pytest.mark.slow
def test_missing_data_folder_is_named(tmp_path, new_name):
    data = make_data(tmp_path / 'data', 2)
    shutil.rmtree(data / 'inputL')
    opt = train_options(new_name('missing_root'), data, total_iter=2, save_freq=2)
    result = run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'x.yml', opt)], tmp_path)
    assert result.returncode != 0
    error = last_line(result.stderr)
    assert str(data / 'inputL') in error, result.stderr[-3000:]
    assert 'not found' in error


@pytest.mark.slow
def test_unknown_variant_lists_the_variants(tmp_path, new_name):
    data = make_data(tmp_path / 'data', 2)
    opt = train_options(new_name('bad_variant'), data, total_iter=2, save_freq=2)
    opt['network_g']['variant'] = 'XL'
    result = run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'x.yml', opt)], tmp_path)
    assert result.returncode != 0
    error = last_line(result.stderr)
    assert "Unknown DMTNet variant 'XL'" in error, result.stderr[-3000:]
    assert 'T, S, B, L, H' in error
