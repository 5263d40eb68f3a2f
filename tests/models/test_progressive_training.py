"""Progressive patch training and the cyclic cosine schedule (Restormer's option names) in DualPixelModel."""

import math
import random
import re

import pytest
import torch
from basicsr.models import build_model

import dmtnet_arch  # noqa: F401
from dmtnet_arch.models.lr_scheduler import CosineAnnealingRestartCyclicLR
from dmtnet_arch.models.progressive_training import ProgressiveSchedule, Stage, cut_batch
from tests.helpers import (
    NETWORK,
    PYTHON,
    REPO,
    TRAIN_ENTRY,
    check_ok,
    make_data,
    run,
    train_options,
    training_model_options,
    write_yaml,
)

BASE_LR = 3e-4


def cyclic_lr(t: int, periods, weights, eta_mins, base_lr: float = BASE_LR) -> float:
    """The schedule written out directly from its definition (Restormer's formula)."""
    start = 0
    for period, weight, eta_min in zip(periods, weights, eta_mins, strict=True):
        if t <= start + period:
            return eta_min + weight * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * (t - start) / period))
        start += period
    return eta_mins[-1]


def scheduler(periods, weights, eta_mins) -> CosineAnnealingRestartCyclicLR:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    return CosineAnnealingRestartCyclicLR(optimizer, periods, weights, eta_mins)


def test_cyclic_schedule_follows_the_formula_at_and_between_period_boundaries():
    # Restormer's recipe in miniature: flat at 3e-4 for the first period, then annealed to 1e-6; plus a third
    # period restarting at half weight
    periods, weights, eta_mins = [4, 6, 5], [1, 1, 0.5], [3e-4, 1e-6, 2e-5]
    sched = scheduler(periods, weights, eta_mins)
    rates = {0: sched.get_last_lr()[0]}
    for t in range(1, 18):
        sched.optimizer.step()
        sched.step()
        rates[t] = sched.get_last_lr()[0]
    for t, lr in rates.items():
        assert lr == pytest.approx(cyclic_lr(t, periods, weights, eta_mins), rel=1e-12, abs=1e-15), t
    assert all(rates[t] == pytest.approx(3e-4) for t in range(5))  # the first period's floor is the base rate
    assert rates[10] == pytest.approx(1e-6)  # end of period 2: its own floor
    assert rates[11] == pytest.approx(2e-5 + 0.5 * 0.5 * (BASE_LR - 2e-5) * (1 + math.cos(math.pi / 5)))  # restart
    assert rates[15] == pytest.approx(2e-5)  # end of the last period
    assert rates[16] == rates[17] == pytest.approx(2e-5)  # beyond it: held at the last floor


@pytest.mark.parametrize(
    ('weights', 'eta_mins', 'match'),
    [([1], [0, 0], 'restart_weights has 1 entries but periods has 2'), ([1, 1], [0], 'eta_mins has 1 entries')],
)
def test_cyclic_schedule_needs_one_weight_and_floor_per_period(weights, eta_mins, match):
    with pytest.raises(ValueError, match=match):
        scheduler([3, 3], weights, eta_mins)


def test_resumed_cyclic_schedule_keeps_its_position_and_the_option_files_periods():
    first = scheduler([4, 6], [1, 1], [3e-4, 1e-6])
    for _ in range(7):
        first.optimizer.step()
        first.step()
    state = first.state_dict()
    assert 'periods' not in state and 'eta_mins' not in state
    resumed = scheduler([4, 16], [1, 1], [3e-4, 1e-6])  # the option file now has a longer second period
    resumed.load_state_dict(state)
    resumed.optimizer.step()
    resumed.step()
    assert resumed.last_epoch == 8
    assert resumed.get_last_lr()[0] == pytest.approx(cyclic_lr(8, [4, 16], [1, 1], [3e-4, 1e-6]))


def progressive_set(**extra) -> dict:
    return {
        'gt_size': 64,
        'gt_sizes': [32, 48, 64],
        'mini_batch_sizes': [4, 2, 1],
        'iters': [2, 2, 2],
        'batch_size_per_gpu': 4,
        **extra,
    }


def test_stages_switch_at_the_cumulative_iterations():
    schedule = ProgressiveSchedule.from_options({'datasets': {'train': progressive_set()}})
    stages = {t: schedule.stage(t) for t in range(1, 9)}
    assert [stages[t].index for t in range(1, 9)] == [0, 0, 1, 1, 2, 2, 2, 2]  # the last stage after them all
    assert stages[3] == Stage(index=1, first_iter=3, patch_size=48, batch_size=2)
    assert stages[8] == Stage(index=2, first_iter=5, patch_size=64, batch_size=1)
    assert schedule.mismatch_with(6) is None
    assert 'continues to the end' in schedule.mismatch_with(9)
    assert 'never reaches stages [2]' in schedule.mismatch_with(4)


@pytest.mark.parametrize(
    ('extra', 'match'),
    [
        ({'batch_size_per_gpu': 2}, r'mini_batch_sizes \[4, 2, 1\] go beyond batch_size_per_gpu 2'),
        ({'gt_size': 48}, r'gt_sizes \[32, 48, 64\] go beyond gt_size 48'),
        ({'iters': [2, 2]}, 'one entry per stage'),
        ({'iters': None}, 'iters missing'),
    ],
)
def test_inconsistent_progressive_options_are_named(extra, match):
    with pytest.raises(ValueError, match=match):
        ProgressiveSchedule.from_options({'datasets': {'train': progressive_set(**extra)}})


def test_cut_takes_the_same_samples_and_window_from_every_tensor():
    n, h, w = 4, 20, 24
    index = torch.arange(n * h * w, dtype=torch.float64).reshape(n, 1, h, w)  # every pixel of every sample unique
    tensors = {'lq': index.repeat(1, 6, 1, 1), 'gt': index.repeat(1, 3, 1, 1) + 0.5, 'lqC': -index.repeat(1, 3, 1, 1)}
    random.seed(0)
    for _ in range(20):
        cut = cut_batch(tensors, Stage(index=1, first_iter=1, patch_size=8, batch_size=2))
        assert cut['lq'].shape == (2, 6, 8, 8) and cut['gt'].shape == (2, 3, 8, 8) and cut['lqC'].shape == (2, 3, 8, 8)
        base = cut['lq'][:, :1]
        assert torch.equal(cut['lq'], base.expand(-1, 6, -1, -1))
        assert torch.equal(cut['gt'], base.expand(-1, 3, -1, -1) + 0.5)
        assert torch.equal(cut['lqC'], -base.expand(-1, 3, -1, -1))
        # a contiguous window of distinct samples
        corner = base[:, 0, 0, 0]
        assert len(set((corner // (h * w)).tolist())) == 2
        window = (index[0, 0, :8, :8] - index[0, 0, 0, 0]).expand(2, -1, -1)
        assert torch.equal(base[:, 0] - corner.view(-1, 1, 1), window)
    assert cut_batch(tensors, Stage(index=0, first_iter=1, patch_size=20, batch_size=4))['gt'].shape == (4, 3, 20, 20)
    whole = cut_batch(tensors, Stage(index=0, first_iter=1, patch_size=24, batch_size=4))
    assert all(torch.equal(whole[name], tensors[name]) for name in tensors)


def progressive_model_options(train_set: dict, scheduler_opt: dict, total_iter: int = 6) -> dict:
    train = {
        'pixel_opt': {'type': 'L1Loss'},
        'optim_g': {'type': 'Adam', 'lr': BASE_LR},
        'scheduler': scheduler_opt,
        'total_iter': total_iter,
    }
    return training_model_options(dict(NETWORK), train, {'train': train_set})


def test_model_trains_with_the_stage_sizes_and_the_cyclic_rate_of_each_iteration():
    periods, weights, eta_mins = [2, 4], [1, 1], [BASE_LR, 1e-6]
    scheduler_opt = {
        'type': 'CosineAnnealingRestartCyclicLR',
        'periods': periods,
        'restart_weights': weights,
        'eta_mins': eta_mins,
    }
    model = build_model(progressive_model_options(progressive_set(), scheduler_opt))
    assert isinstance(model.schedulers[0], CosineAnnealingRestartCyclicLR)
    seen = []
    model.net_g.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
    rates = []
    for t in range(1, 8):
        model.update_learning_rate(t)  # as BasicSR's loop does, before feeding each batch
        rates.append(model.get_current_learning_rate()[0])
        model.feed_data({'lq': torch.rand(4, 6, 64, 64), 'gt': torch.rand(4, 3, 64, 64)})
        model.optimize_parameters(t)
    assert seen == [(4, 6, 32, 32)] * 2 + [(2, 6, 48, 48)] * 2 + [(1, 6, 64, 64)] * 3
    assert model.gt.shape == (1, 3, 64, 64)
    # BasicSR steps the scheduler from iteration 2 on: iteration t trains at the rate of position t - 1
    assert rates == pytest.approx([cyclic_lr(t - 1, periods, weights, eta_mins) for t in range(1, 8)])


def test_progressive_patches_smaller_than_the_network_takes_are_refused():
    scheduler_opt = {'type': 'CosineAnnealingRestartLR', 'periods': [6], 'restart_weights': [1]}
    with pytest.raises(ValueError, match='gt_sizes 16 is smaller than the 32 x 32 pixels'):
        build_model(progressive_model_options(progressive_set(gt_sizes=[16, 48, 64]), scheduler_opt))


@pytest.mark.slow
def test_resumed_training_continues_in_the_right_stage(tmp_path, new_name):
    """Through the training entry: 3 iterations, then --auto_resume to 6; iteration 4 is in stage 1."""
    name = new_name('progressive')
    data = make_data(tmp_path / 'data', 4, 64, 64)

    def options(total_iter):
        opt = train_options(name, data, total_iter=total_iter, save_freq=3, batch=4)
        opt['datasets']['train'].update(progressive_set())
        opt['train']['scheduler'] = {
            'type': 'CosineAnnealingRestartCyclicLR',
            'periods': [2, 4],
            'restart_weights': [1, 1],
            'eta_mins': [1e-3, 1e-6],
        }
        return write_yaml(tmp_path / f'progressive{total_iter}.yml', opt)

    first = run([PYTHON, TRAIN_ENTRY, '-opt', options(3)], tmp_path)
    check_ok(first)
    assert 'iteration 1 is in stage 0 (from iteration 1): patch 32, batch 4 per GPU' in first.stderr
    assert 'iteration 3 is in stage 1 (from iteration 3): patch 48, batch 2 per GPU' in first.stderr
    assert 'iters add up to 6 but train: total_iter is 3' in first.stderr
    second = run([PYTHON, TRAIN_ENTRY, '-opt', options(6), '--auto_resume'], tmp_path)
    check_ok(second)
    assert re.search(r'Resuming training from epoch: \d+, iter: 3\.', second.stderr)
    stages = re.findall(r'iteration (\d+) is in stage (\d+)', second.stderr)
    assert stages == [('4', '1'), ('5', '2')]
    state = torch.load(
        REPO / 'experiments' / name / 'training_states' / '6.state', map_location='cpu', weights_only=False
    )
    lr = state['optimizers'][0]['param_groups'][0]['lr']  # iteration 6: position 5, 3 into the second period
    assert lr == pytest.approx(cyclic_lr(5, [2, 4], [1, 1], [1e-3, 1e-6], base_lr=1e-3))


def test_ifan_model_cuts_its_combined_view_and_its_left_and_right_views_alike():
    """IFANModel feeds the combined view to the network and keeps left and right for its losses: all are cut."""
    opt = progressive_model_options(
        progressive_set(gt_sizes=[32, 48, 64]), {'type': 'MultiStepLR', 'milestones': [100]}
    )
    opt['model_type'] = 'IFANModel'
    opt['network_g'] = {'type': 'IFAN', 'channels': 4, 'res_num': 1, 'iterations': 2}
    model = build_model(opt)
    seen = []
    model.net_g.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
    for t in (1, 3, 5):
        model.feed_data(
            {'lq': torch.rand(4, 6, 64, 64), 'lqC': torch.rand(4, 3, 64, 64), 'gt': torch.rand(4, 3, 64, 64)}
        )
        model.optimize_parameters(t)
        assert model.left.shape == model.right.shape == model.gt.shape == seen[-1]
    assert [shape[0] for shape in seen] == [4, 2, 1] and [shape[-1] for shape in seen] == [32, 48, 64]
    opt = progressive_model_options(
        progressive_set(gt_sizes=[32, 44, 64]), {'type': 'MultiStepLR', 'milestones': [100]}
    )
    opt['model_type'], opt['network_g'] = 'IFANModel', {'type': 'IFAN', 'channels': 4, 'res_num': 1, 'iterations': 2}
    with pytest.raises(ValueError, match='gt_sizes 44 is not a multiple of 8'):
        build_model(opt)
