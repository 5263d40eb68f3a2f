"""PSNR, SSIM and MAE as the DPDD tables compute them: float images in [0, 1], full image, no border crop.

``protocol='16bit'`` (the default, DMTNet's and Restormer's tables) quantises both images to 16-bit levels, as
when the output is written to and read from a 16-bit PNG. ``protocol='8bit'`` is the protocol of IFAN's published
numbers: the target as OpenCV's default ``imread`` reads a 16-bit PNG (the top 8 bits, v >> 8, over 255) and the
output rounded to 8-bit levels. ``protocol='float'`` quantises nothing. Registered in BasicSR's METRIC_REGISTRY
for YAML ``val: metrics:``; ``better`` is BasicSR's own key, any other option is an error.
"""

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY
from skimage.metrics import structural_similarity

from dmtnet_arch.utils.img_util import SCALE_BY_DTYPE

PROTOCOL_LEVELS = {'16bit': 65535, '8bit': 255, 'float': None}
SSIM_WINDOW = 7  # scikit-image's default win_size


# How far a float image may stray outside [0, 1] (a network's overshoot, clamped here) before it is refused as an
# image on another scale, such as [0, 255], whose scores would look plausible and be wrong.
FLOAT_RANGE_TOLERANCE = 0.05


def check_float_range(img: np.ndarray, metric: str, which: str):
    """A float image must lie in [0, 1] within :data:`FLOAT_RANGE_TOLERANCE`; the error names the metric."""
    low, high = float(np.min(img)), float(np.max(img))
    if low < -FLOAT_RANGE_TOLERANCE or high > 1 + FLOAT_RANGE_TOLERANCE:
        raise ValueError(
            f'{metric}: {which} is a float image with values in [{low:.4g}, {high:.4g}], outside [0, 1]: float images '
            'must be in [0, 1] (one in [0, 255] would give plausible but wrong numbers); divide it by its maximum '
            'level, or pass it as uint8 / uint16'
        )


def to_hwc_float(img, metric: str = 'metric', which: str = 'img') -> np.ndarray:
    """A (3, H, W) or (1, 3, H, W) tensor or an (H, W, 3) array -> float64 (H, W, 3) clamped to [0, 1]. Floats must
    be in [0, 1] (:func:`check_float_range`); uint8 and uint16 images (BasicSR's own convention for metrics) are
    scaled by their dtype's maximum; other integer types are refused, as their range is unknown."""
    if isinstance(img, torch.Tensor):
        img = img.detach().cpu()
        if img.dim() == 4:
            if img.shape[0] != 1:
                raise ValueError(f'metrics take one image at a time, got a batch of {img.shape[0]}')
            img = img[0]
        img = img.permute(1, 2, 0).numpy()
    img = np.asarray(img)
    if img.dtype.kind in 'uib':
        if img.dtype not in SCALE_BY_DTYPE:
            raise ValueError(f'metrics take float images in [0, 1] or uint8/uint16 images, got {img.dtype}')
        img = img / SCALE_BY_DTYPE[img.dtype]
    elif img.size:
        check_float_range(img, metric, which)
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f'expected an (H, W, C) image, got shape {img.shape}')
    return np.clip(img, 0.0, 1.0)


def quantise(img: np.ndarray, protocol: str) -> np.ndarray:
    """Round to the levels of the protocol's bit depth."""
    levels = PROTOCOL_LEVELS[protocol]
    return img if levels is None else np.round(img * levels) / levels


def read_as_8bit(target: np.ndarray) -> np.ndarray:
    """A target in [0, 1] as cv2.imread's 8-bit default makes of its 16-bit PNG: floor(v16 / 256) / 255."""
    return np.floor(np.round(target * 65535) / 256) / 255


def check_options(protocol: str, options: dict):
    if protocol not in PROTOCOL_LEVELS:
        raise ValueError(f'Unknown metric protocol {protocol!r}; expected one of {", ".join(PROTOCOL_LEVELS)}')
    unknown = sorted(set(options) - {'better'})
    if unknown:
        raise ValueError(f"Unknown metric options {unknown}: these metrics take protocol (and BasicSR's better)")


def prepare_pair(img, img2, protocol: str, options: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Output and target as clamped float64 (H, W, C) arrays of the same shape, at the protocol's levels."""
    check_options(protocol, options)
    target = to_hwc_float(img2, metric, 'img2 (the target)')
    a = quantise(to_hwc_float(img, metric, 'img (the output)'), protocol)
    b = read_as_8bit(target) if protocol == '8bit' else quantise(target, protocol)
    if a.shape != b.shape:
        raise ValueError(f'image shapes differ: {a.shape} and {b.shape}')
    return a, b


@METRIC_REGISTRY.register()
def calculate_dp_psnr(img, img2, protocol: str = '16bit', **kwargs) -> float:
    """PSNR = 10 log10(1 / MSE) over all pixels and channels, peak 1."""
    a, b = prepare_pair(img, img2, protocol, kwargs, 'calculate_dp_psnr')
    mse = np.mean((a - b) ** 2)
    return float('inf') if mse == 0 else float(10 * np.log10(1.0 / mse))


@METRIC_REGISTRY.register()
def calculate_dp_ssim(img, img2, protocol: str = '16bit', **kwargs) -> float:
    """scikit-image SSIM with data_range 1 over the RGB image (channel_axis -1)."""
    a, b = prepare_pair(img, img2, protocol, kwargs, 'calculate_dp_ssim')
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(
            f'calculate_dp_ssim: the image is {a.shape[1]} x {a.shape[0]} pixels, smaller than the {SSIM_WINDOW} x '
            f'{SSIM_WINDOW} window SSIM slides over it; score images of at least {SSIM_WINDOW} pixels a side'
        )
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=-1))


@METRIC_REGISTRY.register()
def calculate_dp_mae(img, img2, protocol: str = '16bit', **kwargs) -> float:
    """Mean absolute error over all pixels and channels."""
    a, b = prepare_pair(img, img2, protocol, kwargs, 'calculate_dp_mae')
    return float(np.mean(np.abs(a - b)))


for _metric in (calculate_dp_psnr, calculate_dp_ssim, calculate_dp_mae):
    _metric.option_choices = {'protocol': tuple(PROTOCOL_LEVELS)}  # checked when the option file is loaded
