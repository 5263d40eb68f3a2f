"""utils/lmdb_util.py: broken LMDB files are named, and a full disk leaves no partial database."""

import errno
import os
import re
from pathlib import Path

import pytest

import dmtnet_arch  # noqa: F401
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.data.synthetic_dp import generate_dataset
from dmtnet_arch.utils.img_util import write_image
from tests.helpers import random_rgb


@pytest.mark.parametrize('failure', ['lmdb', 'os'])
def test_a_full_disk_while_writing_an_lmdb_names_it_and_leaves_no_partial_database(tmp_path, monkeypatch, failure):
    """prepare_dpdd.py --lmdb and make_synthetic_dp.py --lmdb write through write_view_lmdb; LMDB reports a full
    disk in its own exception (a real ENOSPC cannot be made for a memory-mapped file here, so it is raised as LMDB
    and the OS do)."""
    import lmdb
    from basicsr.utils import lmdb_util

    from dmtnet_arch.utils.lmdb_util import write_view_lmdb

    write_image(tmp_path / 'inputL/a.png', random_rgb(1))

    def full(folder, lmdb_path, *args, **kwargs):
        Path(lmdb_path).mkdir()
        (Path(lmdb_path) / 'data.mdb').write_bytes(bytes(1024))
        if failure == 'lmdb':
            raise lmdb.Error(f'{lmdb_path}: {os.strerror(errno.ENOSPC)}')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(lmdb_util, 'make_lmdb_from_imgs', full)
    target = tmp_path / 'lqL.lmdb'
    with pytest.raises(OSError, match=f'{re.escape(str(target))}: disk full') as error:
        write_view_lmdb(tmp_path / 'inputL', target, ['a.png'])
    assert error.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ['inputL']  # the partial database is removed


def test_broken_lmdb_files_are_named_not_mapped(tmp_path):
    out = generate_dataset(tmp_path / 'set', 2, size=32, seed=0, write_lmdb=True, progress=False)
    options = {f'dataroot_{key}': str(out / f'{key}.lmdb') for key in ('lqL', 'lqR')}
    options.update(dataroot_gt=str(out / 'gt.lmdb'), io_backend={'type': 'lmdb'})
    assert len(DualPixelDataset(dict(options))) == 2
    data = out / 'gt.lmdb' / 'data.mdb'
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 2])
    with pytest.raises(
        ValueError, match=rf'{data}: LMDB file is truncated \(\d+ bytes, its index needs {len(content)}\)'
    ):
        DualPixelDataset(dict(options))
    data.write_bytes(b'')
    with pytest.raises(ValueError, match=rf'{data}: not an LMDB data file'):
        DualPixelDataset(dict(options))
