"""How far tiled inference is from whole-image inference on held-out images; ``scripts/measure_tiling.py`` prints it.

For one image: PSNR against the target untiled and tiled, PSNR of tiled against untiled, the mean absolute tiled -
untiled difference in the blended zones along tile borders against elsewhere, and tiled with each DMSSRM's alpha
taken from the whole image, to show how much the selection's global pooling over one tile costs.
"""

import math

import numpy as np
import torch

from dmtnet_arch.data.data_util import read_sample_views
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr
from dmtnet_arch.tools.scale_analysis import fixed_alpha
from dmtnet_arch.utils.img_util import img2tensor, to_float
from dmtnet_arch.utils.tile_util import blended_zone_mask, tiled_forward

# One value per column after the image's name and size: four PSNRs (dB), then absolute differences on [0, 1].
TILING_COLUMNS = [
    'PSNR untiled',
    'PSNR tiled',
    'PSNR tiled, whole-image alpha',
    'tiled vs untiled PSNR',
    'mean abs diff, border zones',
    'elsewhere',
    'elsewhere, >= overlap from image border',
    'max abs diff',
]


def psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    """The plugin's PSNR of two (1, 3, H, W) float tensors, clamped to [0, 1], without quantisation."""
    return calculate_dp_psnr(output.clamp(0, 1), reference.clamp(0, 1), protocol='float')


def away_from_image_border(shape, margin: int) -> torch.Tensor:
    """(H, W) bool: pixels at least ``margin`` from every image border (where a tile sees less than the image)."""
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[margin:-margin, margin:-margin] = True
    return mask


@torch.inference_mode()
def tiling_error(net: torch.nn.Module, lq: torch.Tensor, target: torch.Tensor, tile: int, overlap: int) -> list:
    """The :data:`TILING_COLUMNS` of one (1, C, H, W) input and its (1, 3, H, W) target; the whole-image-alpha
    column is NaN for a network without DMSSRM scale weights."""
    whole = net(lq)
    has_alpha = bool(getattr(net, 'scale_weights', None))
    alphas = [a.clone() for a in net.scale_weights] if has_alpha else []
    tiled = tiled_forward(net, lq, tile, overlap)
    with_alpha = math.nan
    if has_alpha:
        with fixed_alpha(net, alphas):
            with_alpha = psnr(tiled_forward(net, lq, tile, overlap), target)
    diff = (tiled.clamp(0, 1) - whole.clamp(0, 1)).abs().mean(dim=1)[0]
    border = blended_zone_mask(*lq.shape[-2:], tile, overlap)
    inside = ~border & away_from_image_border(border.shape, overlap)
    psnrs = [psnr(whole, target), psnr(tiled, target), with_alpha, psnr(tiled, whole)]
    return psnrs + [
        float(diff[border].mean()),
        float(diff[~border].mean()),
        float(diff[inside].mean()),
        float(diff.max()),
    ]


def sample_tiling_error(net: torch.nn.Module, sample, tile: int, overlap: int) -> tuple[str, list]:
    """``(width x height, columns)`` of :func:`tiling_error` for a sample with left, right and target views."""
    views = {view: to_float(image) for view, image in read_sample_views(sample, ('left', 'right', 'target')).items()}
    lq = img2tensor(np.concatenate([views['left'], views['right']], axis=2))[None]
    target = img2tensor(views['target'])[None]
    return f'{lq.shape[-1]}x{lq.shape[-2]}', tiling_error(net, lq, target, tile, overlap)


def table_cells(row) -> list[str]:
    """Four PSNRs in dB, then absolute differences on the [0, 1] scale (NaN: no such pixel)."""
    return [f'{v:.2f}' for v in row[:4]] + [f'{v:.2e}' for v in row[4:]]
