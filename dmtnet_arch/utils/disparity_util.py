"""The horizontal shift between two dual-pixel views, block by block (numpy only: no torch, no BasicSR).

Used to measure real captures (``dmtnet_arch.tools.dp_statistics``) and to check the view order of pairs to
deblur (``dmtnet_arch.tools.inference_io``). The shift of a block is the sub-pixel peak of the normalised
cross-correlation of the right view against the left along x: positive when the right view's content lies further
right, which in DPDD's view order means behind the focal plane.
"""

import numpy as np


def grey(rgb: np.ndarray) -> np.ndarray:
    """Mean of the colour channels as float64."""
    return np.asarray(rgb, dtype=np.float64).mean(axis=2)


def horizontal_shift(left: np.ndarray, right: np.ndarray, max_shift: int) -> float | None:
    """Shift (px) that best aligns ``right`` with ``left`` along x: positive when the right view's content lies
    further right. None when the correlation peak is at the search border or not distinct."""
    height, width = left.shape
    core = left[:, max_shift : width - max_shift]
    core = (core - core.mean()) / (core.std() + 1e-9)
    scores = []
    for shift in range(-max_shift, max_shift + 1):
        window = right[:, max_shift + shift : width - max_shift + shift]
        window = (window - window.mean()) / (window.std() + 1e-9)
        scores.append(float((core * window).mean()))
    best = int(np.argmax(scores))
    if best in (0, len(scores) - 1) or scores[best] < 0.5:
        return None
    before, peak, after = scores[best - 1 : best + 2]
    curvature = before - 2 * peak + after
    offset = 0.0 if curvature >= 0 else 0.5 * (before - after) / curvature
    return best - max_shift + offset


def block_shifts(
    left: np.ndarray,
    right: np.ndarray,
    block: int = 48,
    max_shift: int = 8,
    min_std: float = 0.02,
    margin: int = 20,
    step: int | None = None,
):
    """``(top, left_x, shift)`` for every textured ``block`` x ``block`` block of two grey views (``margin`` px
    from the border, one every ``step`` px, default ``block``) whose shift is found; blocks flatter than
    ``min_std`` are skipped."""
    step = step or block
    for top in range(margin, left.shape[0] - block - margin + 1, step):
        for x0 in range(margin, left.shape[1] - block - margin + 1, step):
            left_block = left[top : top + block, x0 - max_shift : x0 + block + max_shift]
            if left_block.std() < min_std:
                continue
            right_block = right[top : top + block, x0 - max_shift : x0 + block + max_shift]
            shift = horizontal_shift(left_block, right_block, max_shift)
            if shift is not None:
                yield top, x0, shift


def focal_side_counts(shifts, min_shift: float = 0.3) -> dict:
    """How many of ``shifts`` (px, one per block) lie behind the focal plane in DPDD's view order (right view's
    content shifted right by more than ``min_shift`` px), in front of it (shifted left), or neither."""
    shifts = np.asarray(shifts, dtype=np.float64)
    return {
        'behind': int(np.sum(shifts > min_shift)),
        'in front': int(np.sum(shifts < -min_shift)),
        'undecided': int(np.sum(np.abs(shifts) <= min_shift)),
    }


def reversed_view_order_share(
    left_rgb: np.ndarray, right_rgb: np.ndarray, min_shift: float = 0.3, max_blocks: int = 150, block: int = 48
) -> tuple:
    """``(share, blocks)``: of the textured blocks whose views are clearly shifted (more than ``min_shift`` px),
    the share shifted left in the right view (in front of the focal plane in DPDD's order), and how many such
    blocks there are. At most about ``max_blocks`` blocks are looked at, spread evenly over the frame, so the check
    costs about the same at any image size."""
    left, right = grey(left_rgb), grey(right_rgb)
    grid = max(left.shape[0] // block, 1) * max(left.shape[1] // block, 1)
    step = block * max(int(np.ceil(np.sqrt(grid / max_blocks))), 1)
    sides = focal_side_counts([shift for *_, shift in block_shifts(left, right, block, step=step)], min_shift)
    decided = sides['behind'] + sides['in front']
    return (sides['in front'] / decided if decided else 0.0), decided
