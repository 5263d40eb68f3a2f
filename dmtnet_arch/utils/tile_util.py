"""The one home for tiled inference: overlapping tiles blended with raised-cosine weights, so no seam shows.

Each tile's output is weighted by the outer product of two 1-D windows that rise from near 0 to 1 over the
overlap as a half cosine (``sin^2``) on every side that has a neighbouring tile, and stay at 1 on sides that
touch the image border. The weights are normalised by their sum at every pixel, so they always sum to one; where
two tiles overlap by exactly ``overlap`` pixels the two ramps are ``sin^2`` and ``cos^2`` and already sum to one.

The windows are computed in numpy and :func:`tiled_forward` takes numpy arrays as well as torch tensors: the
onnxruntime backend of ``scripts/inference.py`` tiles in a process without torch, so torch is imported only where
a torch tensor is asked for.
"""

from collections.abc import Callable

import numpy as np


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of ``size``-pixel windows along an axis of ``length`` pixels: every ``stride`` pixels, the last
    window flush with the far border; one window at 0 when it covers the axis. Tiles (stride ``tile - overlap``)
    and training crops (:func:`dmtnet_arch.data.dpdd_crops.crop_grid`) both use it."""
    if size >= length:
        return [0]
    return [*range(0, length - size, stride), length - size]


def ramp_array(length: int) -> np.ndarray:
    """``length`` float32 weights rising from near 0 to near 1 as sin^2: ramp[i] + ramp[length - 1 - i] == 1."""
    positions = (np.arange(length, dtype=np.float64) + 0.5) / length
    return (np.sin(positions * np.pi / 2) ** 2).astype(np.float32)


def window_array(size: int, start: int, length: int, overlap: int) -> np.ndarray:
    """1-D float32 blending window of a tile covering ``[start, start + size)`` of an axis of ``length`` pixels."""
    window = np.ones(size, dtype=np.float32)
    ramp = min(overlap, size // 2)
    if ramp == 0:
        return window
    if start > 0:
        window[:ramp] = ramp_array(ramp)
    if start + size < length:
        window[size - ramp :] = ramp_array(ramp)[::-1]
    return window


def check_tiling(tile: int, overlap: int):
    """A tile must be positive and larger than its overlap; errors name the options."""
    if tile <= 0:
        raise ValueError(f'tile must be a positive number of pixels, got {tile}')
    if overlap < 0 or overlap >= tile:
        raise ValueError(f'tile_overlap ({overlap}) must be at least 0 and smaller than tile ({tile})')


def tiled_forward(net: Callable, lq, tile: int, overlap: int):
    """Run ``net`` on overlapping ``tile`` x ``tile`` crops of ``lq`` (N, C, H, W; a torch tensor or a numpy array,
    and ``net`` returns the same kind) and blend the outputs (float32)."""
    check_tiling(tile, overlap)
    if isinstance(lq, np.ndarray):
        as_float, as_array = (lambda a: a.astype(np.float32, copy=False)), (lambda a: a)
        zeros = np.zeros
    else:
        import torch

        as_float, as_array = (lambda a: a.float()), (lambda a: torch.from_numpy(a).to(lq.device))

        def zeros(shape, dtype):
            return lq.new_zeros(shape, dtype=torch.float32)

    n, _, h, w = lq.shape
    out = weight = None
    for y in window_starts(h, tile, tile - overlap):
        for x in window_starts(w, tile, tile - overlap):
            crop = lq[..., y : y + tile, x : x + tile]
            tile_out = as_float(net(crop))
            th, tw = crop.shape[-2:]
            window = as_array(np.outer(window_array(th, y, h, overlap), window_array(tw, x, w, overlap)))
            if out is None:
                out = zeros((n, tile_out.shape[1], h, w), dtype=np.float32)
                weight = zeros((1, 1, h, w), dtype=np.float32)
            out[..., y : y + th, x : x + tw] += tile_out * window
            weight[..., y : y + th, x : x + tw] += window
    return out / weight


def blended_zone_mask(height: int, width: int, tile: int, overlap: int):
    """(H, W) bool torch tensor: the pixels where two or more tiles are blended, i.e. along the tile borders."""
    import torch

    check_tiling(tile, overlap)
    coverage = torch.zeros(height, width)
    for y in window_starts(height, tile, tile - overlap):
        for x in window_starts(width, tile, tile - overlap):
            coverage[y : y + tile, x : x + tile] += 1
    return coverage > 1
