"""The one home for the plugin's figures (matplotlib, written atomically as PNG): Figure 5 (scale selection), alpha
against blur, latency against image size, PSNR against parameters and GMACs (Figure 1, the leaderboard),
the demo's side-by-side restorations and metric curves."""

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use('Agg')  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dmtnet_arch.utils.file_util import write_bytes_atomically  # noqa: E402

SCALE_COLOURS = ('tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple')
ZOOM_COLOUR = '#ff3030'


def save_figure(figure, path, title: str = '', dpi: int = 120):
    """Write ``figure`` as a PNG at ``path`` (atomically, ``title`` also in the PNG's Title text) and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=dpi, bbox_inches='tight', metadata={'Title': title})
    plt.close(figure)
    write_bytes_atomically(path, buffer.getvalue())


def feature_image(features: torch.Tensor, mode: str = 'mean') -> np.ndarray:
    """A (C, h, w) feature map as an image in [0, 1]: the channel mean (h, w), or its first three principal
    components as RGB (h, w, 3); each stretched between its 1st and 99th percentiles."""
    c, h, w = features.shape
    if mode == 'mean':
        image = features.mean(dim=0).numpy()
    elif mode == 'pca':
        pixels = features.reshape(c, -1).T.double()
        pixels = pixels - pixels.mean(dim=0)
        _, _, v = torch.linalg.svd(pixels, full_matrices=False)
        image = (pixels @ v[:3].T).reshape(h, w, -1).float().numpy()
        if image.shape[-1] < 3:
            image = np.concatenate([image, np.zeros((h, w, 3 - image.shape[-1]), np.float32)], axis=-1)
    else:
        raise ValueError(f"feature image mode must be 'mean' or 'pca', got {mode!r}")
    return stretch(image)


def stretch(image: np.ndarray) -> np.ndarray:
    """Map the 1st..99th percentile range of ``image`` to [0, 1] (per channel for an RGB image)."""
    axes = (0, 1)
    low = np.percentile(image, 1, axis=axes, keepdims=True)
    high = np.percentile(image, 99, axis=axes, keepdims=True)
    return np.clip((image - low) / np.maximum(high - low, 1e-12), 0, 1)


def show(axis, image: np.ndarray, title: str):
    axis.imshow(image, cmap=None if image.ndim == 3 else 'viridis')
    axis.set_title(title, fontsize=8)
    axis.axis('off')


def figure5(path, blurred: np.ndarray, output: np.ndarray, stages: list, title: str, mode: str = 'mean'):
    """Figure 5 style: the blurred input and the output, then per DMSSRM its alpha, each F_scale_j and the
    weighted sum sum_j alpha_j F_scale_j (``stages``: :class:`dmtnet_arch.tools.scale_analysis.StageFeatures`)."""
    num_scales = len(stages[0].scale_maps)
    columns = num_scales + 1
    figure, axes = plt.subplots(len(stages) + 1, columns, figsize=(2.2 * columns, 2.0 * (len(stages) + 1)))
    axes = np.atleast_2d(axes)
    show(axes[0, 0], blurred, 'input (mean of the views)')
    show(axes[0, 1], output, 'output')
    for axis in axes[0, 2:]:
        axis.axis('off')
    for row, stage in enumerate(stages, start=1):
        for j, scale_map in enumerate(stage.scale_maps):
            caption = f'DMSSRM {row}: F_scale{j + 1} (pool {2**j})\nalpha = {stage.alpha[j]:.3f}'
            show(axes[row, j], feature_image(scale_map, mode), caption)
        show(axes[row, -1], feature_image(stage.weighted_sum, mode), f'DMSSRM {row}:\nsum_j alpha_j F_scale_j')
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path, title)


def alpha_against_blur(path, blur: list, alphas: np.ndarray, blur_label: str, title: str):
    """One panel per DMSSRM: each scale's alpha against the amount of blur (``alphas``: images x DMSSRMs x S)."""
    num_stages, num_scales = alphas.shape[1:]
    figure, axes = plt.subplots(1, num_stages, figsize=(4 * num_stages, 3.2), squeeze=False)
    for stage, axis in enumerate(axes[0]):
        for j in range(num_scales):
            colour = SCALE_COLOURS[j % len(SCALE_COLOURS)]
            axis.scatter(blur, alphas[:, stage, j], s=14, color=colour, label=f'alpha_{j + 1} (pool {2**j})')
        axis.set_xlabel(blur_label)
        axis.set_ylabel('alpha')
        axis.set_title(f'DMSSRM {stage + 1}', fontsize=9)
        if 'PSNR' in blur_label:  # lower PSNR = more blur
            axis.invert_xaxis()  # more blur to the right, as with the defocus radius
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path, title)


def latency_against_size(path, series: dict, title: str):
    """Latency (s) against megapixels, one line per series (``{label: [(megapixels, seconds), ...]}``), with a
    line through the origin and the largest point as a guide for linear growth."""
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for label, points in series.items():
        points = sorted(points)
        xs, ys = zip(*points, strict=True)
        (line,) = axis.plot(xs, ys, marker='o', label=label)
        axis.plot([0, xs[-1]], [0, ys[-1]], linestyle=':', color=line.get_color(), linewidth=0.8)
    axis.set_xlabel('megapixels')
    axis.set_ylabel('latency (s)')
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    save_figure(figure, path, title)


@dataclass(frozen=True)
class ComplexityPoint:
    label: str
    params_m: float | None
    gmacs: float | None
    psnr: float
    published: bool
    family: str  # points of the family 'DMTNet' are joined by a line


def plot_psnr_vs_complexity(points: list[ComplexityPoint], path, measured_on: str) -> None:
    """Combined PSNR against parameters (left panel) and GMACs (right panel), in the style of the DMTNet paper's
    Figure 1: one labelled marker per method, the DMTNet variants joined by a line. Published points (grey, left
    axis) and measured points (red, right axis when both are shown) come from different test sets, so each has
    its own PSNR axis."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    has_published = any(p.published for p in points)
    for ax, attribute, xlabel in ((axes[0], 'params_m', 'Parameters (M)'), (axes[1], 'gmacs', 'GMACs at 1680 x 1120')):
        handles = []
        for published, colour, marker, legend in (
            (True, 'tab:grey', 'o', 'published (DMTNet paper, Table 1; DPDD)'),
            (False, 'tab:red', '*', f'measured ({measured_on})'),
        ):
            group = [p for p in points if p.published == published and getattr(p, attribute) is not None]
            if not group:
                continue
            target = ax.twinx() if not published and has_published else ax
            handles.append(draw_group(target, group, attribute, colour, marker, legend))
            target.set_ylabel(f'Combined PSNR (dB), {"published" if published else "measured"}', color=colour)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=8, loc='best')
    fig.tight_layout()
    save_figure(fig, path, 'Combined PSNR against parameters and GMACs')


def draw_group(ax, group: list[ComplexityPoint], attribute: str, colour: str, marker: str, legend: str):
    """Labelled markers of one group; its DMTNet variants joined in order of complexity."""
    xs = [getattr(p, attribute) for p in group]
    handle = ax.scatter(
        xs, [p.psnr for p in group], c=colour, marker=marker, s=110 if marker == '*' else 45, label=legend, zorder=3
    )
    for p, x in zip(group, xs, strict=True):
        ax.annotate(p.label, (x, p.psnr), textcoords='offset points', xytext=(5, 4), fontsize=8, color=colour)
    variants = sorted((p for p in group if p.family == 'DMTNet'), key=lambda p: getattr(p, attribute))
    if len(variants) > 1:
        ax.plot([getattr(p, attribute) for p in variants], [p.psnr for p in variants], c=colour, lw=1.2)
    return handle


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


def side_by_side_figure(panels: list, window: tuple, path, title: str = ''):
    """Top row: the full images (:class:`Panel`) with the zoom window outlined; bottom row: that window enlarged.

    ``window`` is (top, left, size) in pixels of the images."""
    top, left, size = window
    height, width = panels[0].image.shape[:2]
    full_scale = max(1, round(256 / max(height, width)))
    zoom_scale = max(1, round(full_scale * width / size))
    figsize = (len(panels) * width * full_scale / 100 + 0.3, 2 * height * full_scale / 100 + 0.9)
    figure, grid = plt.subplots(2, len(panels), figsize=figsize, squeeze=False)
    for column, panel in enumerate(panels):
        full, zoom = grid[0, column], grid[1, column]
        full.imshow(upscale(panel.image, full_scale), interpolation='nearest')
        corner = (left * full_scale - 0.5, top * full_scale - 0.5)
        full.add_patch(Rectangle(corner, size * full_scale, size * full_scale, fill=False, edgecolor=ZOOM_COLOUR))
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
    save_figure(figure, path, title, dpi=100)


def metric_curve(path, iterations: list, values: list, baseline: float, label: str, baseline_label: str, ylabel: str):
    """A metric against training iteration, with a constant baseline (e.g. the blurred input) as a dashed line."""
    figure, axes = plt.subplots(figsize=(5.6, 3.4))
    axes.plot(iterations, values, marker='o', markersize=3, label=label)
    axes.axhline(baseline, color='grey', linestyle='--', label=baseline_label)
    axes.set_xlabel('training iteration')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(loc='lower right', fontsize=8)
    save_figure(figure, path, f'{ylabel} against training iteration', dpi=100)
