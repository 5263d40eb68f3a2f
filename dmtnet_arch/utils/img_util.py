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


def write_png16(path, rgb: np.ndarray) -> None:
    """An RGB float image in [0, 1] (clipped) as a 16-bit PNG."""
    write_png(path, float_to_integer(rgb, 16))


def float_to_integer(rgb: np.ndarray, bits: int = 16) -> np.ndarray:
    """An image in [0, 1] (clipped) rounded to 8-bit (uint8) or 16-bit (uint16) levels."""
    dtype = INTEGER_TYPES[bits]
    return np.round(np.clip(rgb, 0.0, 1.0) * np.iinfo(dtype).max).astype(dtype)


def img2tensor(image: np.ndarray):
    """An H x W x C array (float32 from :func:`to_float`) as a contiguous C x H x W tensor of the same type; unlike
    BasicSR's ``img2tensor``, no colour conversion (the arrays here are RGB already). ``[None]`` adds a batch axis."""
    import torch  # not at the top: the onnxruntime backend reads images through this module without torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def tensor2img(tensor) -> np.ndarray:
    """A C x H x W (or 1 x C x H x W) tensor, or numpy array (the onnxruntime backend's outputs), as an H x W x C
    float32 array on the CPU, values as they are."""
    tensor = tensor[0] if tensor.ndim == 4 else tensor
    array = tensor if isinstance(tensor, np.ndarray) else tensor.detach().float().cpu().numpy()
    return array.astype(np.float32, copy=False).transpose(1, 2, 0)


SCALE_BY_DTYPE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
INTEGER_TYPES = {8: np.uint8, 16: np.uint16}


# The image files read: lossless PNG and TIFF at 8 or 16 bit, 8-bit JPEG (camera or video-derived views), and the
# 8-bit BMP and WebP that texture folders of the synthetic generator may hold.
IMAGE_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg', '.bmp', '.webp')


def decode_image(content: bytes, name: str, rgb_only: bool = True) -> np.ndarray:
    """Decode image bytes at their own bit depth into an RGB HxWx3 uint8 or uint16 array; errors name ``name``. With
    ``rgb_only`` false, a grey image stays HxW and an RGBA one keeps its alpha (HxWx4)."""
    if not content:
        raise ValueError(f'{name}: file is empty or missing')
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'{name}: cannot be decoded as an image')
    if rgb_only:
        check_rgb_layout(image, name)
    elif image.dtype not in SCALE_BY_DTYPE:
        raise ValueError(f'{name}: pixel type {image.dtype}; only 8-bit and 16-bit images are supported')
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def check_rgb_layout(image: np.ndarray, name: str):
    """Refuse anything but a 3-channel 8- or 16-bit image, naming the file."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f'{name}: grayscale image; dual-pixel views must be RGB')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{name}: {image.shape[2]}-channel image; dual-pixel views must be RGB (3 channels)')
    if image.dtype not in SCALE_BY_DTYPE:
        raise ValueError(f'{name}: pixel type {image.dtype}; only 8-bit and 16-bit images are supported')


def read_image(path, rgb_only: bool = True) -> np.ndarray:
    """Read an image file at its own bit depth as RGB uint8/uint16 HxWx3 (see :func:`decode_image`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such file')
    return decode_image(path.read_bytes(), str(path), rgb_only)


def to_float(image: np.ndarray) -> np.ndarray:
    """Scale a uint8 (/255) or uint16 (/65535) image to float32 in [0, 1]."""
    return image.astype(np.float32) / np.float32(SCALE_BY_DTYPE[image.dtype])


def gradient_magnitude(grey: np.ndarray, ksize: int = 3) -> np.ndarray:
    """Sobel gradient magnitude sqrt(gx^2 + gy^2) of a float32 or float64 grey image (kernel size ``ksize``), in its
    own type: the detail that defocus blur removes."""
    depth = cv2.CV_64F if grey.dtype == np.float64 else cv2.CV_32F
    return np.hypot(cv2.Sobel(grey, depth, 1, 0, ksize=ksize), cv2.Sobel(grey, depth, 0, 1, ksize=ksize))


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


def list_images(folder, suffixes: tuple = IMAGE_SUFFIXES, pattern: str | None = None) -> list[Path]:
    """Sorted image files directly in ``folder`` whose suffix (any case) is one of ``suffixes``; with ``pattern``
    (e.g. ``'*_L.png'``) only the names it matches, and none is an error. An absent folder is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: folder not found')
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if pattern is None:
        return files
    files = [path for path in files if path.match(pattern)]
    if not files:
        raise ValueError(f'{folder}: no {pattern} images in this folder')
    return files


def png16_bytes(img, path: str) -> bytes:
    """A (3, H, W) RGB tensor in [0, 1] encoded as a 16-bit PNG (``path`` names it in errors)."""
    return encode_png(float_to_integer(tensor2img(img), 16), path)
