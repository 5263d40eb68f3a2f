"""The built-in checkpoint: shipped in the package, loaded by name wherever a weights path is accepted."""

import logging
import os

import numpy as np
import pytest

from dmtnet_arch.utils.checkpoint import BUILTIN_WEIGHTS, RECORD_KEY, read_checkpoint, resolve_weights
from dmtnet_arch.utils.img_util import read_image, write_image
from dmtnet_arch.utils.options import check_path
from tests.helpers import load_script


def test_every_built_in_checkpoint_is_small_and_says_what_it_holds():
    for name in BUILTIN_WEIGHTS:
        path = resolve_weights(name)
        assert os.path.getsize(path) < 10 * 2**20, name
        checkpoint = read_checkpoint(name)
        assert set(checkpoint) == {'params', RECORD_KEY, 'note'}
        assert checkpoint[RECORD_KEY]['type'] == 'DMTNet' and checkpoint[RECORD_KEY]['options']['variant'] == 'T'
        assert 'synthetic' in checkpoint['note']


def test_a_name_that_is_not_built_in_stays_a_path():
    assert resolve_weights('experiments/x/net_g_1.pth') == 'experiments/x/net_g_1.pth'
    assert resolve_weights('~/w.pth') == os.path.expanduser('~/w.pth')


def test_option_files_take_the_name_as_pretrain_network_g():
    opt = {'is_train': False, 'network_g': {'type': 'DMTNet'}, 'path': {'pretrain_network_g': 'synthetic-T'}}
    check_path(opt)
    assert opt['path']['pretrain_network_g'] == resolve_weights('synthetic-T')
    assert os.path.isfile(opt['path']['pretrain_network_g'])


def test_inference_runs_by_name_without_an_option_file(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for view in ('inputL', 'inputR'):
        write_image(tmp_path / 'in' / view / 'scene.png', rng.integers(0, 256, (24, 40, 3)).astype(np.uint8))
    module = load_script('inference')
    with caplog.at_level(logging.INFO, logger='dmtnet_arch.tools.inference'):
        argv = ['--weights', 'synthetic-T', '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')]
        assert module.main([*argv, '--device', 'cpu', '--quiet']) == 0
    assert 'DMTNet-T: weights from built-in synthetic-T' in caplog.text
    output = read_image(tmp_path / 'out' / 'scene.png')
    assert output.shape == (24, 40, 3) and output.dtype == np.uint8


def test_a_checkpoint_without_a_record_needs_an_option_file(tmp_path):
    import torch

    from dmtnet_arch.tools.inference import options_from_checkpoint

    torch.save({'params': {'w': torch.zeros(1)}}, tmp_path / 'bare.pth')
    with pytest.raises(ValueError, match=r'bare\.pth.*pass -opt'):
        options_from_checkpoint(str(tmp_path / 'bare.pth'))
