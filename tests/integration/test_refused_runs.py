"""Mistakes that used to run to the end with exit 0 and a wrong result stop the entries, naming their cause."""

import sys

import pytest
import torch
from basicsr import test as basicsr_test

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from tests.helpers import (
    PYTHON,
    REPO,
    SIZE,
    TEST_ENTRY,
    TINY,
    TRAIN_ENTRY,
    eval_options,
    last_line,
    load_script,
    lose_one_left_view_and_add_another,
    make_data,
    make_dpdd,
    peer_checkpoint,
    run,
    train_options,
    write_yaml,
)


@pytest.mark.slow
def test_misspelled_pretrain_key_stops_the_test_entry(tmp_path, new_name):
    data = make_data(tmp_path / 'data', 2)
    opt = eval_options(new_name('case1'), data, tmp_path / 'net_g.pth')
    opt['path']['pretrain_netwrok_g'] = opt['path'].pop('pretrain_network_g')
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'typo.yml', opt)], tmp_path)
    assert result.returncode != 0
    assert "path: unknown option 'pretrain_netwrok_g' (did you mean pretrain_network_g?)" in last_line(result.stderr)
    assert not (REPO / 'results' / opt['name']).exists()


@pytest.mark.slow
def test_random_weights_asked_for_explicitly_run_through_the_test_entry(tmp_path, new_name):
    data = make_data(tmp_path / 'data', 2)
    opt = eval_options(new_name('random'), data, tmp_path / 'net_g.pth')
    opt['path'].update(pretrain_network_g=None, allow_random_weights=True)
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'random.yml', opt)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((REPO / 'results' / opt['name']).glob('metrics_*_summary.csv'))


@pytest.mark.slow
def test_fewer_training_images_than_the_batch_stop_the_train_entry(tmp_path, new_name):
    data = make_data(tmp_path / 'data', 3)
    opt = train_options(new_name('case3'), data, total_iter=2, save_freq=2, batch=4)
    result = run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'small.yml', opt)], tmp_path)
    assert result.returncode != 0
    assert 'datasets: train (tiny_train): 3 training samples' in last_line(result.stderr)
    assert 'fewer than one global batch of 4 (batch size 4 per process x 1 process(es))' in last_line(result.stderr)
    assert not list((REPO / 'experiments' / opt['name'] / 'models').glob('*.pth'))


def test_dpdd_views_of_other_scenes_stop_the_test_pipeline_and_prepare(tmp_path, new_name, monkeypatch):
    root = make_dpdd(tmp_path / 'DPDD', ['a', 'b', 'c'], size=SIZE)
    lose_one_left_view_and_add_another(root)
    checkpoint = tmp_path / 'net_g.pth'
    torch.save({'params': DMTNet(**TINY).state_dict()}, checkpoint)
    opt = eval_options(new_name('case4'), root, checkpoint)
    opt['datasets']['test_1'] = {
        'name': 'dpdd',
        'type': 'DualPixelDataset',
        'dataroot_dpdd': str(root),
        'split': 'test',
    }
    monkeypatch.setattr(sys, 'argv', ['test.py', '-opt', str(write_yaml(tmp_path / 'dpdd.yml', opt))])
    with pytest.raises(ValueError, match=r'views paired by sorted position name different scenes'):
        basicsr_test.test_pipeline(str(REPO))  # what dmtnet_arch/test.py runs
    prepare = load_script('prepare_dpdd')
    with pytest.raises(ValueError, match=r'test_l/source/c_L.png and .*test_r/source/b_R.png'):
        prepare.main(['--input', str(root), '--layout', 'dpdd', '--split', 'test', '--out', str(tmp_path / 'out')])
    assert not (tmp_path / 'out' / 'test' / 'inputL').exists()


@pytest.mark.slow
@pytest.mark.parametrize(('peer', 'record'), [('Restormer', True), ('DPDNet', False)])
def test_non_strict_load_of_another_architecture_stops_the_test_entry(tmp_path, new_name, peer, record):
    weights = peer_checkpoint(tmp_path, peer, record)
    opt = eval_options(new_name('nonstrict'), make_data(tmp_path / 'data', 2), weights)
    opt['path']['strict_load_g'] = False
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'test.yml', opt)], tmp_path)
    assert result.returncode != 0
    message = last_line(result.stderr)
    assert f'{weights}: strict_load is false, but only 0 of the network' in message
    assert f'checkpoint is {peer}, network is DMTNet-T' in message
