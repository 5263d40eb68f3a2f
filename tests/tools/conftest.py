"""Fixtures of the tools tests."""

from pathlib import Path

import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.utils.checkpoint import RECORD_KEY, network_record
from tests.helpers import TINY


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    """A tiny DMTNet-T checkpoint with its record (built_with), as training writes it; not the initial weights of
    manual_seed 0."""
    torch.manual_seed(1)
    net = DMTNet(**TINY)
    path = tmp_path_factory.mktemp('weights') / 'net.pth'
    torch.save({'params': net.state_dict(), RECORD_KEY: network_record(net, None)}, path)
    return path
