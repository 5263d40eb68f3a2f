"""Files written so that a reader, or a process killed mid-write, only ever sees the old file or the new one."""

import errno
import os
from pathlib import Path

import cv2
import numpy as np

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


def encode_image(rgb: np.ndarray, path, suffix: str | None = None) -> bytes:
    """An RGB uint8 or uint16 array as the bytes of an image of that bit depth, in the format of ``suffix`` (default:
    the path's own: .png, .tif or .tiff); ``path`` names it in errors."""
    suffix = suffix or Path(path).suffix.lower()
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f'{path}: {suffix} encoding failed')
    return encoded.tobytes()


def encode_png(rgb: np.ndarray, path) -> bytes:
    """An RGB uint8 or uint16 array as the bytes of a PNG of that bit depth."""
    return encode_image(rgb, path, '.png')


def write_png(path, rgb: np.ndarray) -> None:
    """An RGB uint8 or uint16 array as a PNG of that bit depth."""
    write_image(path, rgb, '.png')


def write_image(path, rgb: np.ndarray, suffix: str | None = None) -> None:
    """An RGB uint8 or uint16 array as an image of that bit depth (see :func:`encode_image`), written atomically."""
    write_bytes_atomically(path, encode_image(rgb, path, suffix))


def float_to_uint16(rgb: np.ndarray) -> np.ndarray:
    """An image in [0, 1] (clipped) rounded to 16-bit levels."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 65535).astype(np.uint16)


def save_torch_atomically(obj, path) -> None:
    """torch.save through a Python file: a full disk is then an OSError (ENOSPC) rather than a bare RuntimeError
    of torch's zip writer ("unexpected pos")."""
    import torch

    def save(temp: Path):
        with open(temp, 'wb') as file:
            torch.save(obj, file)

    write_atomically(path, save)
