"""Figures of the plugin (matplotlib, Agg backend, written atomically)."""

from dataclasses import dataclass

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from dmtnet_arch.atomic_io import write_atomically  # noqa: E402


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
    write_atomically(path, lambda temp: fig.savefig(temp, format='png', dpi=120))
    plt.close(fig)


def draw_group(ax, group: list[ComplexityPoint], attribute: str, colour: str, marker: str, legend: str):
    """Labelled markers of one group; its DMTNet variants joined in order of complexity."""
    xs = [getattr(p, attribute) for p in group]
    handle = ax.scatter(xs, [p.psnr for p in group], c=colour, marker=marker, s=110 if marker == '*' else 45,
                        label=legend, zorder=3)  # fmt: skip
    for p, x in zip(group, xs, strict=True):
        ax.annotate(p.label, (x, p.psnr), textcoords='offset points', xytext=(5, 4), fontsize=8, color=colour)
    variants = sorted((p for p in group if p.family == 'DMTNet'), key=lambda p: getattr(p, attribute))
    if len(variants) > 1:
        ax.plot([getattr(p, attribute) for p in variants], [p.psnr for p in variants], c=colour, lw=1.2)
    return handle
