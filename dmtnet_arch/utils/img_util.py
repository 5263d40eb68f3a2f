"""Images at their own bit depth: decoding with checks that name the file, conversion to float, encoding.

Neither torch nor basicsr is imported: the onnxruntime backend of ``scripts/inference.py`` reads and writes
images through this module in a process without them.
"""

from pathlib import Path

import cv2
import numpy as np

from dmtnet_arch.utils.file_util import write_bytes_atomically


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


SCALE_BY_DTYPE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


# Inputs to deblur: lossless PNG and TIFF at 8 or 16 bit, and 8-bit JPEG (camera or video-derived views).
INPUT_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg')


def decode_image(content: bytes, name: str) -> np.ndarray:
    """Decode image bytes at their own bit depth into an RGB HxWx3 uint8 or uint16 array; errors name ``name``."""
    if not content:
        raise ValueError(f'{name}: file is empty or missing')
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{name}: cannot be decoded as an image')
    check_rgb_layout(image, name)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_rgb_layout(image: np.ndarray, name: str):
    """Refuse anything but a 3-channel 8- or 16-bit image, naming the file."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f'{name}: grayscale image; dual-pixel views must be RGB')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{name}: {image.shape[2]}-channel image; dual-pixel views must be RGB (3 channels)')
    if image.dtype not in SCALE_BY_DTYPE:
        raise ValueError(f'{name}: pixel type {image.dtype}; only 8-bit and 16-bit images are supported')


def read_image(path) -> np.ndarray:
    """Read an image file at its own bit depth as RGB uint8/uint16 HxWx3."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    return decode_image(path.read_bytes(), str(path))


def to_float(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 (/255) or uint16 (/65535) image to float32 in [0, 1]."""
    return image.astype(np.float32) / np.float32(SCALE_BY_DTYPE[image.dtype])


def reduce_to_8bit(image: np.ndarray) -> np.ndarray:
    """A 16-bit image as OpenCV's default ``imread`` decodes its file (IFAN's reading): the top byte, v >> 8.
    8-bit images are returned unchanged."""
    return (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image


def bit_depth(image: np.ndarray) -> int:
    """Bits per channel of an integer image."""
    return image.dtype.itemsize * 8


def size_text(image: np.ndarray) -> str:
    """Width x height, as image sizes are usually written."""
    return f'{image.shape[1]}x{image.shape[0]}'


def list_pngs(folder, pattern: str = '*.png') -> list:
    """Sorted file names in ``folder`` matching ``pattern``; an absent or empty folder is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: folder not found')
    names = sorted(
        p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith('.') and p.suffix == '.png'
        and Path(p.name).match(pattern)
    )  # fmt: skip
    if not names:
        raise ValueError(f'{folder}: no {pattern} images in this folder')
    return names


def list_images(folder) -> list[Path]:
    """Sorted image files (:data:`INPUT_SUFFIXES`, any case) directly in ``folder``; an absent folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: folder not found')
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)


def png16_bytes(img, path: str) -> bytes:
    """A (3, H, W) RGB tensor in [0, 1] encoded as a 16-bit PNG (``path`` names it in errors)."""
    return encode_png(float_to_uint16(img.detach().float().cpu().numpy().transpose(1, 2, 0)), path)
