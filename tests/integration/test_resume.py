"""Resuming continues this experiment's own run, or is refused naming what differs; a run resumed in the middle
of an epoch trains as the uninterrupted one."""

import copy
from pathlib import Path

import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers the plugin)
from tests.helpers import (
    PYTHON,
    REPO,
    TRAIN_ENTRY,
    check_ok,
    last_line,
    load_params,
    make_data,
    remove_outputs,
    run,
    snapshot,
    train_options,
    unique_name,
    write_yaml,
)


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    """Two iterations of a tiny run, a training state saved at 2 (with its run options)."""
    tmp = tmp_path_factory.mktemp('first_run')
    data, other_data = make_data(tmp / 'data', 2), make_data(tmp / 'other_data', 2, seed=1)
    name = unique_name('first_run')
    opt = train_options(name, data, total_iter=2, save_freq=2, batch=1)
    try:
        check_ok(run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp / 'first.yml', opt)], tmp))
        yield {'tmp': tmp, 'opt': opt, 'other_data': other_data, 'experiment': REPO / 'experiments' / name}
    finally:
        remove_outputs(REPO, name)


def second_run(first_run: dict, case: str, new_name) -> tuple[dict, list]:
    """Options of a second run that must not continue the first, and its extra arguments."""
    opt = copy.deepcopy(first_run['opt'])
    opt['train']['total_iter'] = 4
    if case == 'other data, same name':
        opt['datasets']['train']['dataroot_lqL'] = str(first_run['other_data'] / 'inputL')
        return opt, ['--auto_resume']
    if case == 'other schedule, same name':
        opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [4], 'restart_weights': [1]}
        return opt, ['--auto_resume']
    opt['name'] = new_name('second_run')  # another experiment, resuming the first one's state
    opt['path']['resume_state'] = str(first_run['experiment'] / 'training_states' / '2.state')
    return opt, []


# one case a line, aligned by hand: clearer than the formatter's layout
@pytest.mark.slow
@pytest.mark.parametrize(
    ('case', 'fragments'),
    [('other data, same name', ['--auto_resume found', 'data: dataroot_lqL', 'other_data/inputL']),
     ('other schedule, same name', ['--auto_resume found', "schedule: scheduler 'MultiStepLR' -> "
                                    "'CosineAnnealingRestartLR'"]),
     ('state of another experiment', ['path: resume_state', 'is not a state of this experiment',
                                      'set path: pretrain_network_g to'])],
)  # fmt: skip
def test_resuming_another_run_is_refused_naming_the_difference(first_run, new_name, case, fragments):
    opt, extra = second_run(first_run, case, new_name)
    experiment = first_run['experiment']
    before = snapshot(experiment / 'models'), snapshot(experiment / 'training_states')
    yml = write_yaml(first_run['tmp'] / 'second.yml', opt)
    result = run([PYTHON, TRAIN_ENTRY, '-opt', yml, *extra], first_run['tmp'])
    assert result.returncode != 0
    message = last_line(result.stderr)
    assert str(experiment / 'training_states' / '2.state') in message
    for fragment in fragments:
        assert fragment in message, message
    assert (snapshot(experiment / 'models'), snapshot(experiment / 'training_states')) == before  # untouched
    assert not list(experiment.parent.glob(f'{experiment.name}_archived_*'))


@pytest.mark.slow
def test_a_resumed_run_trains_as_the_uninterrupted_one(tmp_path, new_name):
    """Random 32 x 32 crops of two 64 x 64 images and random flips, batch 1: the state at iteration 3 lies in the
    middle of epoch 1. Resumed there, the run must skip the batch of epoch 1 it trained on and draw the crops the
    uninterrupted run drew; BasicSR alone replays that batch with the generators of a fresh start."""
    data = make_data(tmp_path / 'data', 2, height=64, width=64)
    one_thread = {'OMP_NUM_THREADS': '1'}

    def options(name: str, total_iter: int) -> Path:
        opt = train_options(name, data, total_iter=total_iter, save_freq=3, batch=1)
        opt['datasets']['train'].update(gt_size=32, use_hflip=True, use_vflip=True)
        return write_yaml(tmp_path / f'{name}_{total_iter}.yml', opt)

    resumed, straight = new_name('resumed'), new_name('straight')
    check_ok(run([PYTHON, TRAIN_ENTRY, '-opt', options(resumed, 3)], tmp_path, one_thread))
    second = run([PYTHON, TRAIN_ENTRY, '-opt', options(resumed, 6), '--auto_resume'], tmp_path, one_thread)
    check_ok(second)
    assert 'Resuming training from epoch: 1, iter: 3.' in second.stderr
    check_ok(run([PYTHON, TRAIN_ENTRY, '-opt', options(straight, 6)], tmp_path, one_thread))
    weights = [load_params(REPO / 'experiments' / name / 'models' / 'net_g_6.pth') for name in (resumed, straight)]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
