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
    """Combined PSNR against parameters (left) and GMACs (right), in the style of the DMTNet paper's Figure 1:
    one labelled marker per method, the DMTNet variants joined by a line; published and measured points apart."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, attribute, xlabel in ((axes[0], 'params_m', 'Parameters (M)'), (axes[1], 'gmacs', 'GMACs at 1680 x 1120')):
        for published, colour, marker, legend in (
            (True, 'tab:grey', 'o', 'published (paper Table 1, DPDD)'),
            (False, 'tab:red', '*', f'measured ({measured_on})'),
        ):
            group = [p for p in points if p.published == published and getattr(p, attribute) is not None]
            if not group:
                continue
            ax.scatter([getattr(p, attribute) for p in group], [p.psnr for p in group], c=colour, marker=marker,
                       s=110 if marker == '*' else 45, label=legend, zorder=3)  # fmt: skip
            for p in group:
                ax.annotate(p.label, (getattr(p, attribute), p.psnr), textcoords='offset points', xytext=(5, 4),
                            fontsize=8, color=colour)  # fmt: skip
            variants = sorted((p for p in group if p.family == 'DMTNet'), key=lambda p: getattr(p, attribute))
            if len(variants) > 1:
                ax.plot([getattr(p, attribute) for p in variants], [p.psnr for p in variants], c=colour, lw=1.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel('Combined PSNR (dB)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    write_atomically(path, lambda temp: fig.savefig(temp, format='png', dpi=120))
    plt.close(fig)
