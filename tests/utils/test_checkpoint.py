"""utils/checkpoint.py: checkpoints record what built them, loads check it, and bad files name themselves."""

import logging
import re
from pathlib import Path

import pytest
import torch
from basicsr.models import build_model

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.tools import inference
from dmtnet_arch.utils.checkpoint import (
    RECORD_KEY,
    adopt_checkpoint_options,
    build_network_from_checkpoint,
    load_network_weights,
)
from tests.helpers import SIZE, TINY, peer_checkpoint


def model_options(models_dir: Path, checkpoint=None, **network) -> dict:
    """A DualPixelModel in test mode on the CPU, as BasicSR's test pipeline builds it."""
    return {
        'model_type': 'DualPixelModel',
        'is_train': False,
        'dist': False,
        'rank': 0,
        'num_gpu': 0,
        'network_g': {'type': 'DMTNet', **TINY, **network},
        'path': {
            'pretrain_network_g': checkpoint,
            'strict_load_g': True,
            'param_key_g': 'params',
            'models': str(models_dir),
        },
        'val': {'save_img': False},
    }


@pytest.fixture
def basicsr_log(caplog, monkeypatch):
    """BasicSR's logger (INFO) does not propagate to pytest's handler: let it, for one test."""
    from basicsr.utils import get_root_logger

    monkeypatch.setattr(get_root_logger(), 'propagate', True)
    caplog.set_level(logging.INFO, logger='basicsr')
    return caplog


def saved_checkpoint(tmp_path: Path, **network) -> Path:
    """A checkpoint written by the model's own save_network (compat's atomic save, with the record)."""
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path / 'models', **network))
    model.save_network(model.net_g, 'net_g', 7)
    return tmp_path / 'models' / 'net_g_7.pth'


def test_checkpoints_record_what_built_them_and_loads_check_it(tmp_path, basicsr_log):
    checkpoint = saved_checkpoint(tmp_path, input_residual=True)
    record = torch.load(checkpoint, weights_only=True)[RECORD_KEY]
    assert record['type'] == 'DMTNet' and record['dmtnet_arch_version'] == dmtnet_arch.__version__
    assert record['options']['input_residual'] is True and record['options']['variant'] == 'T'
    assert record['options']['embed_dim'] == TINY['embed_dim'] and record['options']['window_size'] == 8

    # set to another value in the options: an error naming the option and both values
    with pytest.raises(ValueError, match=r'network_g: input_residual is False in the options .* input_residual: True'):
        build_model(model_options(tmp_path, str(checkpoint), input_residual=False))
    with pytest.raises(ValueError, match=r"variant is 'S' in the options .*variant: 'T' \(checkpoint is DMTNet-T\)"):
        build_model(model_options(tmp_path, str(checkpoint), variant='S', input_residual=True))
    # left unset: the checkpoint's value is used, and logged
    opt = model_options(tmp_path, str(checkpoint))
    model = build_model(opt)
    assert model.net_g.input_residual is True
    assert (
        f'network_g: not set in the options, taken from the checkpoint {checkpoint}: input_residual: True'
        in basicsr_log.text
    )
    # inference: a network built without it is refused; building from the checkpoint adopts it
    with pytest.raises(ValueError, match=r'network: input_residual is False in the options but the checkpoint'):
        load_network_weights(DMTNet(**TINY), str(checkpoint))
    assert build_network_from_checkpoint({'type': 'DMTNet', **TINY}, str(checkpoint)).input_residual is True


def test_foreign_checkpoints_load_with_a_log_line_and_size_mismatches_name_the_variants(tmp_path, basicsr_log):
    foreign = tmp_path / 'foreign.pth'
    torch.save({'params': DMTNet(**TINY).state_dict()}, foreign)
    build_model(model_options(tmp_path, str(foreign)))
    assert (
        f'{foreign}: no record of the options that built this checkpoint; they could not be checked' in basicsr_log.text
    )
    message = r'checkpoint is DMTNet-T \(embed_dim 24\), network is DMTNet-S \(embed_dim 24\)\. \d+ missing keys'
    with pytest.raises(ValueError, match=message):
        build_model(model_options(tmp_path, str(foreign), variant='S'))
    with pytest.raises(ValueError, match=r'checkpoint is DMTNet-T \(embed_dim 24\), network is DMTNet-T\..*shape'):
        load_network_weights(DMTNet(**{**TINY, 'embed_dim': 96}), str(foreign))


def test_unreadable_checkpoints_are_named(tmp_path):
    empty, truncated = tmp_path / 'empty.pth', tmp_path / 'truncated.pth'
    empty.write_bytes(b'')
    checkpoint = saved_checkpoint(tmp_path)
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    model = build_model(model_options(tmp_path, None))
    for path, fragment in ((empty, 'checkpoint file is empty'), (truncated, 'cannot read the checkpoint')):
        with pytest.raises(ValueError, match=rf'{path}: {fragment}'):
            model.load_network(model.net_g, str(path))


def test_structural_options_travel_with_the_checkpoint(tmp_path):
    checkpoint = saved_checkpoint(tmp_path, input_residual=True)
    lq = torch.rand(1, 6, SIZE, SIZE)
    reference = build_model(model_options(tmp_path, str(checkpoint), input_residual=True))
    adopted = build_model(model_options(tmp_path, str(checkpoint)))  # the option file leaves it out
    with torch.no_grad():
        assert torch.equal(reference.net_g(lq), adopted.net_g(lq))
    opt = model_options(tmp_path, str(checkpoint))
    adopt_checkpoint_options(opt)
    assert opt['network_g']['input_residual'] is True
    with pytest.raises(ValueError, match=r'input_residual is False in the options but the checkpoint was built with'):
        load_network_weights(DMTNet(**TINY), str(checkpoint))  # what --variant T without the option did


@pytest.mark.parametrize('peer', ['Restormer', 'DPDNet'])
def test_a_peers_checkpoint_given_to_dmtnet_names_the_peer(tmp_path, peer):
    weights = peer_checkpoint(tmp_path, peer, record=False)
    net = DMTNet(**TINY)
    with pytest.raises(ValueError, match=f'{weights}: the checkpoint does not fit the network: checkpoint is {peer}, '):
        load_network_weights(net, str(weights))
    bigger = DMTNet(**{**TINY, 'variant': 'S', 'num_rbm': 1, 'num_rm': 1, 'rgm_channels': 8})
    load_network_weights(bigger, str(checkpoint_of(net, tmp_path)), strict=False)  # a smaller variant: allowed
    for key, value in net.state_dict().items():
        assert torch.equal(bigger.state_dict()[key], value)


def checkpoint_of(net: torch.nn.Module, folder: Path) -> Path:
    path = folder / 'own.pth'
    torch.save({'params': net.state_dict()}, path)
    return path


@pytest.mark.parametrize('record', ['DMTNet-T', {'type': 'DMTNet'}, {'type': 7, 'options': {}}])
def test_a_malformed_built_with_record_names_the_file(tmp_path, record):
    net = DMTNet(**TINY)
    path = tmp_path / 'edited.pth'
    torch.save({'params': net.state_dict(), RECORD_KEY: record}, path)
    with pytest.raises(ValueError, match=f'^{re.escape(str(path))}: malformed built_with record'):
        load_network_weights(net, str(path))
    with pytest.raises(ValueError, match=f'^{re.escape(str(path))}: malformed built_with record'):
        inference.options_from_checkpoint(str(path))
