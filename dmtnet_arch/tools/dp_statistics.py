"""Measuring dual-pixel statistics on real captures: view disparity against blur size, and left/right imbalance.

``scripts/measure_dp_statistics.py`` runs this on any folder in the ``inputL/ inputR/ inputC/ target/`` layout;
the synthetic generator's defaults were chosen from its output on real Canon crops (``docs/synthetic_data.md``).
For every textured block, the horizontal shift of the right view against the left is the sub-pixel peak of their
normalised cross-correlation, and the blur is the radius of the disc that best turns the sharp target into the
combined view there.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from dmtnet_arch.data.data_util import VIEW_FOLDERS, list_png_names
from dmtnet_arch.utils.img_util import read_image, to_float

DISC_RADII = tuple(np.arange(0.0, 16.5, 0.5))


@dataclass(frozen=True)
class BlockMeasurement:
    """One block: its position, the right view's horizontal shift against the left (px), the disc radius (px)."""

    name: str
    y: int
    x: int
    shift_px: float
    blur_radius_px: float
    match_error: float


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


def disc_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disc of unit sum; radius 0 is a delta."""
    half = int(np.ceil(radius)) + 1
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0)
    return kernel / kernel.sum()


def disc_blurs(target: np.ndarray) -> list:
    """The sharp target blurred by every disc of :data:`DISC_RADII`."""
    return [cv2.filter2D(target, -1, disc_kernel(radius), borderType=cv2.BORDER_REFLECT_101) for radius in DISC_RADII]


def best_disc_radius(blurs: list, combined: np.ndarray, box: tuple) -> tuple[float, float]:
    """Disc radius whose blur of the target best matches ``combined`` inside ``box`` (gain and offset fitted), and
    the remaining error as a fraction of the block's variance."""
    top, left, size = box
    errors = []
    reference = combined[top : top + size, left : left + size].ravel()
    for blurred in blurs:
        patch = blurred[top : top + size, left : left + size].ravel()
        design = np.stack([patch, np.ones_like(patch)], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, reference, rcond=None)
        errors.append(float(np.mean((design @ coefficients - reference) ** 2)))
    best = int(np.argmin(errors))
    return DISC_RADII[best], errors[best] / (reference.var() + 1e-12)


def measure_scene(name: str, views: dict, block: int = 48, max_shift: int = 8, min_std: float = 0.02) -> list:
    """Block measurements of one scene; ``views`` holds float RGB ``left``, ``right``, ``combined``, ``target``."""
    left, right, combined, target = (grey(views[key]) for key in ('left', 'right', 'combined', 'target'))
    margin = 20
    blurs = disc_blurs(target)
    measurements = []
    for top in range(margin, left.shape[0] - block - margin + 1, block):
        for x0 in range(margin, left.shape[1] - block - margin + 1, block):
            left_block = left[top : top + block, x0 - max_shift : x0 + block + max_shift]
            if left_block.std() < min_std:
                continue
            right_block = right[top : top + block, x0 - max_shift : x0 + block + max_shift]
            shift = horizontal_shift(left_block, right_block, max_shift)
            if shift is None:
                continue
            radius, error = best_disc_radius(blurs, combined, (top, x0, block))
            measurements.append(BlockMeasurement(name, top, x0, shift, radius, error))
    return measurements


def shift_against_blur(measurements: list, max_error: float = 0.2) -> dict:
    """Median |shift| per disc radius (blocks whose disc fit explains most of the variance) and the slope of a
    least-squares line through the origin: px of view shift per px of blur radius."""
    good = [m for m in measurements if m.match_error <= max_error]
    radii = np.array([m.blur_radius_px for m in good])
    shifts = np.abs(np.array([m.shift_px for m in good]))
    by_radius = {}
    for radius in sorted(set(radii.tolist())):
        chosen = shifts[radii == radius]
        by_radius[radius] = (float(np.median(chosen)), int(chosen.size))
    blurred = radii >= 1.0
    slope = float((radii[blurred] * shifts[blurred]).sum() / max((radii[blurred] ** 2).sum(), 1e-12))
    return {'blocks': len(good), 'by_radius': by_radius, 'slope': slope}


def view_balance(views: dict, columns: int = 8) -> np.ndarray:
    """Ratio of the left view's mean brightness to the right view's in ``columns`` vertical strips, left to right."""
    left, right = grey(views['left']), grey(views['right'])
    strips = np.array_split(np.arange(left.shape[1]), columns)
    return np.array([left[:, s].mean() / max(right[:, s].mean(), 1e-9) for s in strips])


def measure_folder(root) -> tuple[list, dict]:
    """Block measurements of every scene of an ``inputL/ inputR/ inputC/ target/`` folder and each scene's
    left/right brightness ratio per vertical strip."""
    measurements, balance = [], {}
    for name in list_png_names(f'{root}/{VIEW_FOLDERS["left"]}'):
        views = {view: to_float(read_image(f'{root}/{folder}/{name}')) for view, folder in VIEW_FOLDERS.items()}
        measurements += measure_scene(name, views)
        balance[name] = view_balance(views)
    return measurements, balance


def report_lines(measurements: list, balance: dict) -> list:
    """What ``scripts/measure_dp_statistics.py`` prints: the slope, the median shift per radius, the imbalance."""
    fit = shift_against_blur(measurements)
    signed = np.mean([m.shift_px for m in measurements if m.blur_radius_px >= 1.0] or [0.0])
    ratios = np.concatenate(list(balance.values()))
    lines = [
        f'{fit["blocks"]} textured blocks; view shift per px of disc radius (fit through 0): {fit["slope"]:.3f}; '
        f'mean signed shift of blurred blocks {signed:+.2f} px (positive: right view content further right)',
        f'left/right brightness ratio per strip: {ratios.min():.3f} to {ratios.max():.3f}',
        'radius px | median |shift| px | blocks',
    ]
    lines += [f'{radius:9.1f} | {shift:16.2f} | {count}' for radius, (shift, count) in fit['by_radius'].items()]
    return lines
