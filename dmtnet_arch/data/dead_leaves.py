"""Procedural sharp content with natural-image statistics: the dead-leaves model with 1/f textures.

Occluding shapes (discs, ellipses, rectangles, polygons) whose sizes follow a power law ``p(r) ~ r^-3`` (the
scale-invariant case of Lee, Mumford and Huang, 2001), drawn back to front until the frame is covered, with colours
drawn from the pixels of natural photographs; every leaf carries its own 1/f-noise texture. Needs no download and
has detail at every scale, which a handful of photographs resized to a training crop does not.
"""

from dataclasses import dataclass

import cv2
import numpy as np

SUPERSAMPLING = 2  # drawn at twice the size and reduced: anti-aliased edges in float precision


@dataclass(frozen=True)
class DeadLeavesModel:
    """Leaf radius range (px, at output size), power-law exponent, and the strength of the 1/f leaf textures."""

    min_radius: float = 1.0
    max_radius_fraction: float = 0.3
    exponent: float = 3.0
    coverage: float = 3.0
    texture_strength: tuple = (0.0, 0.25)
    texture_slope: float = 1.0


def power_law_radii(count: int, low: float, high: float, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` radii in [low, high] with density proportional to ``r ** -exponent`` (inverse-CDF sampling)."""
    power = 1.0 - exponent
    uniform = rng.random(count)
    return (low**power + uniform * (high**power - low**power)) ** (1.0 / power)


def leaf_count(size: tuple, model: DeadLeavesModel) -> int:
    """Enough leaves for the frame to be covered ``coverage`` times on average. The mean leaf area is estimated from
    4096 radii of a fixed generator (not the closed form, whose count differs slightly): kept so that the built-in
    checkpoint's data regenerates byte for byte."""
    high = model.max_radius_fraction * min(size)
    radii = power_law_radii(4096, model.min_radius, high, model.exponent, np.random.default_rng(0))
    mean_area = np.pi * np.mean(radii**2)
    return int(np.clip(model.coverage * size[0] * size[1] / mean_area, 16, 200_000))


def one_over_f_noise(size: tuple, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std Gaussian noise whose amplitude spectrum falls as ``1 / f ** slope``."""
    height, width = size
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(height), np.fft.rfftfreq(width), indexing='ij'))
    frequency[0, 0] = 1.0
    spectrum = (rng.standard_normal(frequency.shape) + 1j * rng.standard_normal(frequency.shape)) / frequency**slope
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=size)
    return (field / (field.std() + 1e-12)).astype(np.float32)


def natural_colours(sources: list, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` RGB colours, each a random pixel of a random photograph (their joint colour statistics)."""
    colours = np.empty((count, 3), dtype=np.float32)
    picks = rng.integers(len(sources), size=count)
    for index, source in enumerate(sources):
        chosen = np.flatnonzero(picks == index)
        rows = rng.integers(source.shape[0], size=chosen.size)
        columns = rng.integers(source.shape[1], size=chosen.size)
        colours[chosen] = source[rows, columns]
    return colours


def draw_leaf(canvas: np.ndarray, centre: np.ndarray, radius: float, leaf_id: int, rng: np.random.Generator):
    """Draw one leaf (label ``leaf_id``) on an integer label canvas: a disc, ellipse, rectangle or polygon."""
    shape = rng.integers(4)
    x, y = (int(round(v)) for v in centre)
    if shape == 0:
        cv2.circle(canvas, (x, y), max(1, int(round(radius))), leaf_id, thickness=-1)
    elif shape == 1:
        axes = (max(1, int(radius)), max(1, int(radius * rng.uniform(0.3, 1.0))))
        cv2.ellipse(canvas, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, leaf_id, thickness=-1)
    else:
        corners = 4 if shape == 2 else int(rng.integers(3, 8))
        angles = (
            np.sort(rng.uniform(0, 2 * np.pi, corners))
            if shape == 3
            else np.arange(4) * np.pi / 2 + rng.uniform(0, np.pi)
        )
        points = np.stack([x + radius * np.cos(angles), y + radius * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], leaf_id)


def dead_leaves_texture(
    size: tuple, sources: list, rng: np.random.Generator, model: DeadLeavesModel = DeadLeavesModel()
):
    """An (H, W, 3) float32 RGB image in [0, 1] of occluding textured leaves with power-law sizes."""
    height, width = size
    big = (height * SUPERSAMPLING, width * SUPERSAMPLING)
    count = leaf_count(size, model)
    radii = power_law_radii(count, model.min_radius, model.max_radius_fraction * min(size), model.exponent, rng)
    labels = np.zeros(big, dtype=np.int32)
    centres = rng.uniform(0, 1, size=(count, 2)) * (big[1], big[0])
    for leaf_id in range(1, count + 1):  # back to front: later leaves occlude earlier ones
        draw_leaf(labels, centres[leaf_id - 1], radii[leaf_id - 1] * SUPERSAMPLING, leaf_id, rng)
    colours = natural_colours(sources, count + 1, rng)
    strengths = rng.uniform(*model.texture_strength, size=count + 1).astype(np.float32)
    image = colours[labels] * (
        1.0 + strengths[labels][..., None] * one_over_f_noise(big, model.texture_slope, rng)[..., None]
    )
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.clip(image, 0.0, 1.0).astype(np.float32)
