"""utils/options.py: option files checked at load time, unknown keys, value types, schedules, devices."""

import copy
import sys

import pytest
import torch
import yaml

import dmtnet_arch  # noqa: F401
from dmtnet_arch.utils.device_util import check_device
from dmtnet_arch.utils.options import OptionError, check_options
from tests.helpers import REPO, changed, load_script, refused, shipped

OPTIONS = sorted((REPO / 'options').glob('*.yml'))


@pytest.mark.parametrize('path', OPTIONS, ids=[path.name for path in OPTIONS])
def test_every_shipped_option_file_passes(path, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(path)])
    from basicsr.utils import options

    assert getattr(options.parse_options, 'checks_options', False)
    opt, _ = options.parse_options(str(tmp_path), is_train=path.name.startswith('train_'))
    assert opt['network_g']['type'] == yaml.safe_load(path.read_text())['network_g']['type']


def test_unknown_keys_are_errors_with_the_closest_known_key():
    train = shipped('train_DMTNet_synthetic.yml')
    cases = [
        (
            lambda o: o['datasets']['train'].update(use_hflp=True),
            "datasets: train: unknown option 'use_hflp'",
            'use_hflip?',
        ),
        (
            lambda o: o['network_g'].update(input_residal=True),
            "network_g: unknown option 'input_residal'",
            'input_residual?',
        ),
        (lambda o: o['train'].update(grad_clp=1.0), "train: unknown option 'grad_clp'", 'grad_clip?'),
        (  # SRModel would build it, but the dual-pixel models' losses never use it: refused, not silently ignored
            lambda o: o['train'].update(perceptual_opt={'type': 'PerceptualLoss'}),
            "train: unknown option 'perceptual_opt'",
        ),
        (
            lambda o: o['train']['scheduler'].update(eta_mins=[0.0]),
            "train: scheduler: unknown option 'eta_mins'",
            'eta_min?',
        ),
        (
            lambda o: o['path'].update(pretrain_netwrok_g='x.pth'),
            "path: unknown option 'pretrain_netwrok_g'",
            'pretrain_network_g?',
        ),
        (
            lambda o: o['val']['metrics']['psnr'].update(crop_border=4),
            "val: metrics: psnr: unknown option 'crop_border'",
        ),
        (lambda o: o['network_g'].update(type='DMTNett'), "network_g: type: no network named 'DMTNett'", 'DMTNet?'),
    ]
    for edit, *fragments in cases:
        refused(changed(train, edit), *fragments)


def test_numbers_written_as_strings_are_converted_and_bad_values_named():
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['train']['optim_g']['lr'] = '5e-4'  # YAML 1.1 reads 5e-4 without a dot as a string
    opt['datasets']['train']['gt_size'] = '64'
    opt['train']['pixel_opt']['eps'] = '1e-6'
    opt['val']['val_freq'] = 2e4  # !!float 2e4
    check_options(opt)
    assert opt['train']['optim_g']['lr'] == 5e-4 and opt['datasets']['train']['gt_size'] == 64
    assert opt['train']['pixel_opt']['eps'] == 1e-6 and opt['val']['val_freq'] == 20000
    train = shipped('train_DMTNet_synthetic.yml')
    cases = [
        (lambda o: o['datasets']['train'].update(gt_size='big'), "datasets: train: gt_size must be int, got 'big'"),
        (lambda o: o['datasets']['train'].update(gt_size=64.5), 'datasets: train: gt_size must be int, got 64.5'),
        (lambda o: o['datasets']['train'].update(batch_size_per_gpu=0), 'batch_size_per_gpu must be at least 1, got 0'),
        (lambda o: o['datasets']['train'].update(use_hflip='yes please'), 'datasets: train: use_hflip must be bool'),
        (lambda o: o['network_g'].update(embed_dim='wide'), "network_g: embed_dim must be int, got 'wide'"),
        (
            lambda o: o['val']['metrics']['psnr'].update(protocol='12bit'),
            'val: metrics: psnr: protocol must be one of 16bit',
        ),
        (lambda o: o['train'].update(amp='fp32'), 'train: amp must be one of bf16, fp16, False'),
        (lambda o: o['datasets']['train'].update(mini_batch_sizes=[4, 0]), 'mini_batch_sizes[1] must be at least 1'),
    ]
    for edit, fragment in cases:
        refused(changed(train, edit), fragment)


def test_progressive_and_cyclic_schedule_options_are_known():
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['datasets']['train'].update(mini_batch_sizes=[4, 2], iters=['300', 300], gt_sizes=[32, 64])
    opt['train']['total_iter'] = 600
    opt['train']['scheduler'] = {
        'type': 'CosineAnnealingRestartCyclicLR',
        'periods': [300, 300],
        'restart_weights': [1, 1],
        'eta_mins': [3e-4, 1e-6],
    }
    check_options(opt)
    assert opt['datasets']['train']['iters'] == [300, 300]


def test_dataset_names_must_be_unique():
    refused(
        changed(shipped('train_DMTNet_synthetic.yml'), lambda o: o['datasets']['val'].update(name='synthetic_train')),
        "datasets: val: name 'synthetic_train' is also the name of datasets: train",
    )
    test = shipped('test_DMTNet_synthetic.yml', is_train=False)
    test['datasets']['test_2'] = copy.deepcopy(test['datasets']['test'])
    refused(test, "datasets: test_2: name 'synthetic_test' is also the name of datasets: test")


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on a machine without a GPU')
def test_device_requests_without_the_device_give_one_clear_message():
    refused(
        changed(shipped('train_DMTNet_synthetic.yml'), lambda o: o.update(num_gpu=1)), 'num_gpu: 1 but PyTorch sees 0'
    )
    for name in ('cuda', 'cuda:1'):
        with pytest.raises(OptionError, match=rf'--device {name}: PyTorch sees 0 GPU\(s\).*--device cpu'):
            check_device(name)
    assert check_device('cpu').type == 'cpu'
    for script in ('visualize_scales', 'benchmark'):  # the scripts with a --device check it before any work
        argv = {
            'visualize_scales': ['-opt', 'unread.yml', '--input', 'unread', '--output', 'unwritten'],
            'benchmark': [],
        }
        with pytest.raises(OptionError, match=r'--device cuda:1: PyTorch sees 0 GPU\(s\)'):
            load_script(script).main([*argv[script], '--device', 'cuda:1'])


def test_testing_without_weights_needs_an_explicit_request():
    test = shipped('test_DMTNet_synthetic.yml', is_train=False)
    refused(changed(test, lambda o: o['path'].update(pretrain_network_g=None)), 'path: pretrain_network_g is not set')
    refused(changed(test, lambda o: o['path'].pop('pretrain_network_g')), 'allow_random_weights: true')
    check_options(changed(test, lambda o: o['path'].update(pretrain_network_g=None, allow_random_weights=True)))
    check_options(changed(shipped('train_DMTNet_synthetic.yml'), lambda o: o['path'].update(pretrain_network_g=None)))


@pytest.mark.parametrize('decay', [1.0, 1.5, -0.1])
def test_ema_decay_must_be_in_zero_to_one(decay):
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['train']['ema_decay'] = decay
    refused(opt, f'train: ema_decay must be at least 0 and below 1, got {decay}')


# one case a line, aligned by hand: clearer than the formatter's layout
@pytest.mark.parametrize(
    ('scheduler', 'fragments'),
    [
        ({'type': 'CosineAnnealingRestartLR', 'periods': [4000], 'restart_weights': [1]},
         ['periods [4000] sum to 4000 iterations, fewer than train: total_iter 6000', 'TypeError at iteration 4001',
          'lengthen the last period by 2000']),
        ({'type': 'CosineAnnealingRestartCyclicLR', 'periods': [2000, 3000], 'restart_weights': [1, 1],
          'eta_mins': [3e-4, 1e-6]},
         ['periods [2000, 3000] sum to 5000', 'the last 1000 iterations would run at the floor eta_mins[-1]']),
        ({'type': 'CosineAnnealingRestartLR', 'periods': [3000, 3000], 'restart_weights': [1]},
         ['train: scheduler: restart_weights has 1 entries but periods has 2']),
    ],
)  # fmt: skip
def test_schedules_must_cover_total_iter(scheduler, fragments):
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['train']['scheduler'] = copy.deepcopy(scheduler)
    refused(opt, *fragments)
    opt['train']['total_iter'] = sum(scheduler['periods'])
    if len(scheduler['restart_weights']) == len(scheduler['periods']):
        from dmtnet_arch.utils.options import check_options

        check_options(opt)  # periods that cover the run pass
