"""Per-view LMDBs: meta_info keys, a check that the data file is complete, writing through BasicSR."""

import errno
import shutil
import struct
from pathlib import Path

from dmtnet_arch.utils.file_util import is_disk_full


def read_meta_info_keys(meta_info_file) -> list:
    """Keys listed in a BasicSR meta_info file: the first field of each line without its extension."""
    path = Path(meta_info_file)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: meta_info file not found')
    lines = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f'{path}: meta_info file lists no images')
    return [name.removesuffix('.png') for name in lines]


LMDB_MAGIC = 0xBEEFC0DE


# byte offsets in an LMDB meta page (lmdb's MDB_meta after its 16-byte page header, 64-bit build)
LMDB_MAGIC_OFFSET, LMDB_PAGE_SIZE_OFFSET, LMDB_LAST_PAGE_OFFSET = 16, 40, 136


def check_lmdb_data_file(lmdb_path):
    """``data.mdb`` must be an LMDB file holding every page its newest meta page counts. A truncated one would be
    memory-mapped and kill the process with a bus error at the first read past its end; refuse it, naming it."""
    data = Path(lmdb_path) / 'data.mdb'
    if not data.is_file():
        raise FileNotFoundError(f'{data}: LMDB data file not found')
    size = data.stat().st_size
    with data.open('rb') as file:
        head = file.read(LMDB_LAST_PAGE_OFFSET + 16)
        if len(head) < LMDB_LAST_PAGE_OFFSET + 16 or struct.unpack_from('<I', head, LMDB_MAGIC_OFFSET)[0] != LMDB_MAGIC:
            raise ValueError(f'{data}: not an LMDB data file (empty, truncated or another format)')
        page_size = struct.unpack_from('<I', head, LMDB_PAGE_SIZE_OFFSET)[0]
        file.seek(page_size)
        second = file.read(LMDB_LAST_PAGE_OFFSET + 16)
    metas = [
        struct.unpack_from('<QQ', page, LMDB_LAST_PAGE_OFFSET) for page in (head, second) if len(page) == len(head)
    ]
    last_page, _ = max(metas, key=lambda meta: meta[1])  # the meta page of the newest transaction
    needed = (last_page + 1) * page_size
    if size < needed:
        raise ValueError(f'{data}: LMDB file is truncated ({size} bytes, its index needs {needed}); rebuild it')


def check_keys_in_lmdb(keys: list, lmdb_path, listed_by=None):
    """Every key must be listed in the LMDB's own meta_info.txt; the error names the key and the LMDB, and blames
    ``listed_by`` (the meta_info file the keys were read from) when given. Its data file is checked to be complete
    first."""
    check_lmdb_data_file(lmdb_path)
    available = set(read_meta_info_keys(Path(lmdb_path) / 'meta_info.txt'))
    missing = [key for key in keys if key not in available]
    if missing and listed_by is not None:
        raise ValueError(
            f'{listed_by}: lists key {missing[0]!r} ({len(missing)} keys in all) that the target LMDB {lmdb_path} '
            'does not hold: is it the meta_info file of these LMDBs?'
        )
    if missing:
        raise ValueError(f'key {missing[0]!r} is not in {lmdb_path} ({len(missing)} keys missing in all)')


def write_view_lmdb(view_dir: Path, lmdb_path: Path, names: list):
    """One view's PNGs into an LMDB through BasicSR's maker (16-bit PNGs stay 16-bit), keyed by file stem, built
    under a temporary name and renamed. The map size is set from the files: BasicSR's estimate from the first
    image is too small when PNGs compress unevenly (MapFullError)."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs  # basicsr on use: utils stay importable before it

    temp = lmdb_path.with_name(f'.{lmdb_path.stem}.partial.lmdb')
    shutil.rmtree(temp, ignore_errors=True)
    map_size = 3 * sum((view_dir / name).stat().st_size for name in names) + (64 << 20)
    keys = [Path(name).stem for name in names]
    try:
        make_lmdb_from_imgs(str(view_dir), str(temp), names, keys, map_size=map_size)
    except Exception as error:
        shutil.rmtree(temp, ignore_errors=True)
        if is_disk_full(error):
            raise OSError(
                errno.ENOSPC, f'{lmdb_path}: disk full ({error}) while writing it; free some space or write elsewhere'
            ) from error
        raise
    shutil.rmtree(lmdb_path, ignore_errors=True)
    temp.replace(lmdb_path)
