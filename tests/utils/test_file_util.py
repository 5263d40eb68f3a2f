"""utils/file_util.py: atomic writes name the file they were writing when the disk is full."""

import errno
import os

import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch.utils import file_util
from tests.helpers import full_disk_link


@pytest.mark.parametrize('writer', ['bytes', 'torch'])
def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch, writer):
    link = full_disk_link(tmp_path)
    monkeypatch.setattr(file_util, 'temporary_name', lambda path: link)
    target = tmp_path / 'models' / 'net_g_10.pth'
    with pytest.raises(OSError, match=f'{target}: disk full') as full:
        if writer == 'bytes':
            file_util.write_bytes_atomically(target, bytes(4096))
        else:
            file_util.save_torch_atomically({'params': {'w': torch.zeros(4096)}}, target)
    assert full.value.errno == errno.ENOSPC
    assert not target.exists() and not os.path.lexists(link)
