"""Files written so that a reader, or a process killed mid-write, only ever sees the old file or the new one."""

import csv
import errno
import io
import os
from pathlib import Path

# Temporary files are ``.<name>.<pid>.partial`` beside their target; a crash may leave one, never a half target.
TEMP_SUFFIX = '.partial'
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def temporary_name(path: Path) -> Path:
    return path.with_name(f'.{path.name}.{os.getpid()}{TEMP_SUFFIX}')


def write_atomically(path, write) -> None:
    """Call ``write(temporary_path)``, then rename over ``path``; the temporary file never outlives the call."""
    path = Path(path)
    if path.parent != Path(''):
        path.parent.mkdir(parents=True, exist_ok=True)
    temp = temporary_name(path)
    try:
        write(temp)
        os.replace(temp, path)
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise OSError(
                error.errno,
                f'{path}: disk full ({error.strerror}) while writing it; free some space or write elsewhere',
            ) from error
        raise
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomically(path, payload: bytes) -> None:
    write_atomically(path, lambda temp: temp.write_bytes(payload))


def save_torch_atomically(obj, path) -> None:
    """torch.save through a Python file: a full disk is then an OSError (ENOSPC) rather than a bare RuntimeError
    of torch's zip writer ("unexpected pos"). torch is imported here, not at the top: this module serves processes
    without torch (the onnxruntime backend of scripts/inference.py)."""
    import torch

    def save(temp: Path):
        with open(temp, 'wb') as file:
            torch.save(obj, file)

    write_atomically(path, save)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT, as an OSError or in the message of an error that wraps it (LMDB's)."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    return any(os.strerror(code) in str(error) for code in DISK_FULL_ERRNOS)


def csv_bytes(header: list, rows: list[list], lineterminator: str = '\r\n') -> bytes:
    """A CSV table (``header``, then ``rows``) as bytes to write; ``lineterminator`` as :mod:`csv` takes it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()
