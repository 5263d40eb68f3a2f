"""How much a checkpoint deblurs real dual-pixel captures, and whether it uses the views' disparity.

For every scene of a folder with targets (the DPDD layout, or ``inputL/ inputR/ [inputC/] target/``), the blurred
combined view and the network's output are scored against the target, once with the views in the given order and
once swapped. A network that uses the dual-pixel disparity does clearly better in the right order.
``scripts/real_benchmark.py`` is the command; ``docs/synthetic_data.md`` says how it is used.
"""

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from dmtnet_arch.data.data_util import (
    VIEW_FOLDERS,
    dpdd_folders,
    pair_dpdd_layout,
    pair_folder_layout,
    read_sample_views,
)
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr, calculate_dp_ssim
from dmtnet_arch.tools.dp_statistics import RADIUS_BINS, measure_scene, radius_bin_text
from dmtnet_arch.tools.inference import Deblurrer
from dmtnet_arch.utils.file_util import csv_bytes, write_bytes_atomically
from dmtnet_arch.utils.img_util import (
    bit_depth,
    float_to_integer,
    img2tensor,
    read_image,
    tensor2img,
    to_float,
    write_image,
)


class Gains:
    """The gains of a score with ``psnr_blurred``, ``psnr_output`` and ``psnr_swapped`` (NaN: no swapped run)."""

    @property
    def gain(self) -> float:
        """PSNR of the output over the blurred combined view."""
        return self.psnr_output - self.psnr_blurred

    @property
    def gain_swapped(self) -> float:
        """The same with the two views swapped."""
        return self.psnr_swapped - self.psnr_blurred

    @property
    def order_margin(self) -> float:
        """How much the given view order beats the swapped one."""
        return self.psnr_output - self.psnr_swapped


@dataclass(frozen=True)
class SceneScore(Gains):
    """PSNR (dB) and SSIM against the target of the blurred combined view, the output, the output of swapped views."""

    name: str
    psnr_blurred: float
    ssim_blurred: float
    psnr_output: float
    ssim_output: float
    psnr_swapped: float
    ssim_swapped: float


SCORE_COLUMNS = [f.name for f in fields(SceneScore)] + ['gain', 'gain_swapped', 'order_margin']


def scenes_with_targets(root, split: str = 'test') -> list:
    """The scenes of ``root``: the original DPDD layout (``<split>_c/target``) or ``inputL/ inputR/ target/``."""
    root = Path(root)
    if dpdd_folders(root, split)['target'][0].is_dir():
        return pair_dpdd_layout(root, split, with_combined=True)
    folders = {view: root / name for view, name in VIEW_FOLDERS.items()}
    if not (folders['left'].is_dir() and folders['right'].is_dir() and folders['target'].is_dir()):
        raise FileNotFoundError(
            f'{root}: not a dual-pixel folder with targets: expected {split}_l/ {split}_r/ {split}_c/ (DPDD) or '
            'inputL/ inputR/ target/ (and optionally inputC/)'
        )
    combined = folders['combined'] if folders['combined'].is_dir() else None
    return pair_folder_layout(folders['left'], folders['right'], folders['target'], combined)


def read_scene(sample) -> dict:
    """The views of a scene as float RGB; without a combined capture, the mean of the views stands in for it."""
    images = read_sample_views(sample)
    views = {view: to_float(image) for view, image in images.items()}
    views.setdefault('combined', (views['left'] + views['right']) / 2)
    views['bits'] = bit_depth(images['left'])
    return views


def blurred_as_stored(views: dict) -> np.ndarray:
    """The combined view at the input's bit depth (the mean of the views is rounded as a file would hold it)."""
    levels = 2 ** views['bits'] - 1
    return np.round(views['combined'] * levels) / levels


def as_input(first: np.ndarray, second: np.ndarray) -> torch.Tensor:
    """(1, 6, H, W): the first view's channels, then the second's."""
    return img2tensor(np.concatenate([first, second], axis=2).astype(np.float32))[None]


def output_as_saved(deblurrer: Deblurrer, lq: torch.Tensor, bits: int, name: str) -> np.ndarray:
    """The network's output as the inference command writes it: clipped and rounded to the input's bit depth."""
    return float_to_integer(tensor2img(deblurrer(lq, name)), bits)


def score(image: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM of ``image`` against ``target``, as they are (no further quantisation)."""
    return calculate_dp_psnr(image, target, protocol='float'), calculate_dp_ssim(image, target, protocol='float')


def score_scene(deblurrer: Deblurrer, sample, breakdown=None) -> tuple[SceneScore, np.ndarray]:
    """Scores of one scene, and the output in the given view order; ``breakdown`` (a :class:`BlurBreakdown`), when
    given, also gets the scene's errors per blur size."""
    views = read_scene(sample)
    output = output_as_saved(deblurrer, as_input(views['left'], views['right']), views['bits'], sample.name)
    swapped = output_as_saved(deblurrer, as_input(views['right'], views['left']), views['bits'], sample.name)
    target = views['target']
    values = (*score(blurred_as_stored(views), target), *score(output, target), *score(swapped, target))
    if breakdown is not None:
        breakdown.add(sample.name, views, output, swapped)
    return SceneScore(sample.name, *values), output


def mean_score(scores: list) -> SceneScore:
    """Per-image mean of every column (what the DPDD tables report)."""
    columns = [f.name for f in fields(SceneScore)][1:]
    return SceneScore('mean', *[float(np.mean([getattr(s, c) for s in scores])) for c in columns])


def scores_csv(scores: list) -> bytes:
    """One row per scene and a last ``mean`` row, with :data:`SCORE_COLUMNS`."""
    rows = [
        [row.name, *[number_text(getattr(row, column)) for column in SCORE_COLUMNS[1:]]]
        for row in [*scores, mean_score(scores)]
    ]
    return csv_bytes(SCORE_COLUMNS, rows, lineterminator='\n')


def number_text(value: float, digits: int = 4, sign: str = '') -> str:
    """A number for a table; NaN (no swapped run) is empty."""
    return '' if np.isnan(value) else f'{value:{sign}.{digits}f}'


def write_scores_csv(path, scores: list):
    """:func:`scores_csv` written atomically."""
    write_bytes_atomically(path, scores_csv(scores))


def summary_line(label: str, mean: SceneScore, count: int) -> str:
    """One line: blurred and output PSNR/SSIM, the gain in both view orders and the order margin."""
    return (
        f'{label}: {count} scenes; blurred {mean.psnr_blurred:.2f} dB / {mean.ssim_blurred:.4f}, output '
        f'{mean.psnr_output:.2f} dB / {mean.ssim_output:.4f}: gain {mean.gain:+.2f} dB, views swapped '
        f'{decibels(mean.gain_swapped)}, order margin {decibels(mean.order_margin)}'
    )


def decibels(value: float) -> str:
    """'+0.39 dB', or 'not run' for NaN (outputs made elsewhere have no swapped run)."""
    text = number_text(value, 2, '+')
    return f'{text} dB' if text else 'not run'


def run_benchmark(deblurrer: Deblurrer, samples: list, output_dir=None, progress=None, breakdown=None) -> list:
    """Scores of every scene; with ``output_dir``, the outputs (given view order) are written there as PNGs; with
    ``breakdown`` (a :class:`BlurBreakdown`), every scene's errors per blur size are added to it."""
    scores = []
    for sample in samples:
        scene_score, output = score_scene(deblurrer, sample, breakdown)
        scores.append(scene_score)
        if output_dir is not None:
            write_image(Path(output_dir) / f'{sample.name}.png', output)
        if progress:
            progress(scene_score)
    return scores


def score_outputs(samples: list, outputs_dir, breakdown=None) -> list:
    """Scores of outputs made elsewhere (e.g. a peer's released results, ``<name>.png`` per scene); there is no
    swapped run, so its columns are NaN. ``breakdown`` as in :func:`run_benchmark`."""
    scores = []
    for sample in samples:
        views = read_scene(sample)
        output = read_image(Path(outputs_dir) / f'{sample.name}.png')
        values = (*score(blurred_as_stored(views), views['target']), *score(output, views['target']))
        scores.append(SceneScore(sample.name, *values, float('nan'), float('nan')))
        if breakdown is not None:
            breakdown.add(sample.name, views, output)
    return scores


# ------------------------------------------------------------------------------------------- gains per blur size


@dataclass(frozen=True)
class BlurBinScore(Gains):
    """PSNR (dB) against the target of the blurred combined view, the output and the swapped run's output, pooled
    over the textured blocks whose measured disc radius lies in [radius_low_px, radius_high_px)."""

    radius_low_px: float
    radius_high_px: float
    blocks: int
    psnr_blurred: float
    psnr_output: float
    psnr_swapped: float


class BlurBreakdown:
    """Where a model gains: squared errors against the target summed over every scene's textured blocks, per bin of
    the disc radius that :func:`~dmtnet_arch.tools.dp_statistics.measure_scene` measures for the block (from the
    target and the combined view, so it does not depend on the model). ``scene_blocks`` caches each scene's
    measurement; share one dict between the breakdowns of several models to measure every scene once."""

    def __init__(self, scene_blocks: dict | None = None, edges: tuple = RADIUS_BINS):
        self.scene_blocks = {} if scene_blocks is None else scene_blocks
        self.bounds = (*edges, np.inf)
        self.sums = np.zeros((len(edges), 4))  # per bin: blocks, then summed MSE of blurred, output, swapped

    def blocks(self, name: str, views: dict) -> list:
        """The scene's measured blocks, measured on first use."""
        if name not in self.scene_blocks:
            self.scene_blocks[name] = measure_scene(name, views)
        return self.scene_blocks[name]

    def add(self, name: str, views: dict, output: np.ndarray, swapped: np.ndarray | None = None) -> None:
        """One scene's block errors; ``output`` and ``swapped`` as saved (integers at the input's bit depth)."""
        target = views['target']
        images = [blurred_as_stored(views), to_float(output), None if swapped is None else to_float(swapped)]
        for block in self.blocks(name, views):
            row = int(np.searchsorted(self.bounds, block.blur_radius_px, side='right')) - 1
            window = block.window
            errors = [np.nan if image is None else np.mean((image[window] - target[window]) ** 2) for image in images]
            self.sums[row] += (1, *errors)

    def scores(self) -> list:
        """One :class:`BlurBinScore` per bin (NaN PSNRs where a bin has no block)."""
        rows = []
        for low, high, (count, *errors) in zip(self.bounds[:-1], self.bounds[1:], self.sums, strict=True):
            psnrs = [pooled_psnr(error, count) for error in errors]
            rows.append(BlurBinScore(float(low), float(high), int(count), *psnrs))
        return rows


def pooled_psnr(summed_mse: float, blocks: int) -> float:
    """PSNR (data range 1) of the mean of ``blocks`` block MSEs: inf for a perfect match, NaN for no blocks."""
    if not blocks or np.isnan(summed_mse):
        return np.nan
    return np.inf if summed_mse == 0 else float(10 * np.log10(blocks / summed_mse))


def breakdown_lines(rows: list) -> list:
    """One line per blur-radius bin: blocks, the blurred view's PSNR and the gains in both view orders."""
    lines = []
    for row in rows:
        text = f'  blur radius {radius_bin_text(row.radius_low_px, row.radius_high_px)}: {row.blocks} blocks'
        if row.blocks:
            text += (
                f', blurred {row.psnr_blurred:.2f} dB, gain {row.gain:+.2f} dB, views swapped '
                f'{decibels(row.gain_swapped)}'
            )
        lines.append(text)
    return lines


BREAKDOWN_COLUMNS = [f.name for f in fields(BlurBinScore)] + ['gain', 'gain_swapped']


def breakdown_csv(rows: list) -> bytes:
    """One row per bin with :data:`BREAKDOWN_COLUMNS`; empty cells where there is nothing to report."""
    cells = [
        [f'{row.radius_low_px:g}', f'{row.radius_high_px:g}', str(row.blocks)]
        + [number_text(getattr(row, column)) for column in BREAKDOWN_COLUMNS[3:]]
        for row in rows
    ]
    return csv_bytes(BREAKDOWN_COLUMNS, cells, lineterminator='\n')


def markdown_table(rows: list) -> str:
    """A table of ``(label, mean SceneScore)`` rows: the blurred input once, then each model in both view orders."""
    lines = [
        '| model | PSNR (dB) | SSIM | gain (dB) | views swapped: PSNR / gain (dB) | order margin (dB) |',
        '|---|---|---|---|---|---|',
    ]
    if rows:
        first = rows[0][1]
        lines.append(f'| blurred combined view | {first.psnr_blurred:.2f} | {first.ssim_blurred:.4f} | 0 | - | - |')
    for label, mean in rows:
        swapped = number_text(mean.psnr_swapped, 2)
        swapped_cell = f'{swapped} / {number_text(mean.gain_swapped, 2, "+")}' if swapped else 'not run'
        lines.append(
            f'| {label} | {mean.psnr_output:.2f} | {mean.ssim_output:.4f} | {mean.gain:+.2f} | {swapped_cell} | '
            f'{number_text(mean.order_margin, 2, "+") or "-"} |'
        )
    return '\n'.join(lines) + '\n'
