"""Figures written as PNGs with matplotlib (no display needed): restoration side by side, metric curves."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from dmtnet_arch.atomic_io import write_atomically

ZOOM_COLOUR = '#ff3030'


@dataclass(frozen=True)
class Panel:
    """One image of a side-by-side figure: H x W x 3 RGB in [0, 1] and its caption."""

    image: np.ndarray
    title: str


def most_defocused_window(defocus: np.ndarray, size: int, detail: np.ndarray | None = None) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` window with the largest sum of |defocus|, each pixel weighted by
    ``detail`` when given (e.g. the sharp image's gradient magnitude: where the blur destroyed the most)."""
    height, width = defocus.shape
    size = min(size, height, width)
    weights = np.abs(defocus).astype(np.float64) * (1.0 if detail is None else detail)
    # summed-area table: every window's sum in one vectorised step
    table = np.pad(weights.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return int(top), int(left)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so that pixels stay visible and the PNG compresses well."""
    return np.clip(image, 0, 1).repeat(factor, axis=0).repeat(factor, axis=1)


def save_figure(figure: Figure, path) -> Path:
    """Render ``figure`` to a PNG at ``path`` (atomically) and return the path."""
    FigureCanvasAgg(figure)
    write_atomically(path, lambda temp: figure.savefig(temp, format='png', dpi=figure.dpi))
    return Path(path)


def side_by_side_figure(panels: list[Panel], window: tuple[int, int, int], path, title: str = '') -> Path:
    """Top row: the full images with the zoom window outlined; bottom row: that window enlarged, same order.

    ``window`` is (top, left, size) in pixels of the images."""
    top, left, size = window
    height, width = panels[0].image.shape[:2]
    full_scale = max(1, round(256 / max(height, width)))
    zoom_scale = max(1, round(full_scale * width / size))
    figure = Figure(figsize=(3 * width * full_scale / 100 + 0.3, 2 * height * full_scale / 100 + 0.9), dpi=100)
    grid = figure.subplots(2, len(panels), squeeze=False)
    for column, panel in enumerate(panels):
        full, zoom = grid[0, column], grid[1, column]
        full.imshow(upscale(panel.image, full_scale), interpolation='nearest')
        full.add_patch(
            Rectangle(
                (left * full_scale - 0.5, top * full_scale - 0.5), size * full_scale, size * full_scale,
                fill=False, edgecolor=ZOOM_COLOUR, linewidth=1.5,
            )
        )  # fmt: skip
        full.set_title(panel.title, fontsize=9)
        zoom.imshow(upscale(panel.image[top : top + size, left : left + size], zoom_scale), interpolation='nearest')
        for spine in zoom.spines.values():
            spine.set_edgecolor(ZOOM_COLOUR)
        for axes in (full, zoom):
            axes.set_xticks([])
            axes.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(pad=0.4)
    return save_figure(figure, path)


def metric_curve_figure(
    iterations: list[int], values: list[float], baseline: float, path, label: str, baseline_label: str, ylabel: str
) -> Path:
    """A metric against training iteration, with a constant baseline (e.g. the blurred input) as a dashed line."""
    figure = Figure(figsize=(5.6, 3.4), dpi=100)
    axes = figure.subplots()
    axes.plot(iterations, values, marker='o', markersize=3, label=label)
    axes.axhline(baseline, color='grey', linestyle='--', label=baseline_label)
    axes.set_xlabel('training iteration')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(loc='lower right', fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
