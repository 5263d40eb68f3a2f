"""What the one-command demo (``scripts/demo.py``) measures and draws on a generated synthetic set.

The test and validation sets are the generator's (:mod:`dmtnet_arch.data.synthetic_dp`), so each image has its
defocus map: the figures zoom where the defocus blurred the most detail, and the showcase is the image with the
largest mean defocus, chosen before looking at any result.
"""

import contextlib
import io
from pathlib import Path

import cv2
import numpy as np
from basicsr.utils.plot_util import read_data_from_tensorboard

from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.data.synthetic_dp import load_defocus
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_mae, calculate_dp_psnr, calculate_dp_ssim
from dmtnet_arch.utils.img_util import gradient_magnitude, read_image, tensor2img, to_float
from dmtnet_arch.utils.plot_util import Panel, most_defocused_window, side_by_side_figure

METRICS = {'psnr': calculate_dp_psnr, 'ssim': calculate_dp_ssim, 'mae': calculate_dp_mae}


def load_split(dataset_opt: dict, root: Path) -> DualPixelDataset:
    """A dataset of an option file's split, with its data roots under ``root`` and the combined view."""
    dataset_opt = {**dataset_opt, 'phase': 'test'}
    dataset_opt.update({k: str(root / v) for k, v in dataset_opt.items() if k.startswith('dataroot_')})
    return DualPixelDataset(dataset_opt)


def set_root(dataset: DualPixelDataset) -> Path:
    """The generated set a dataset reads (the folder above its target/ folder)."""
    return Path(dataset.samples[0].target).parents[1]


def blurred_input_metrics(dataset: DualPixelDataset) -> dict[str, float]:
    """Each of :data:`METRICS` of the combined (blurred) view against the target, averaged over the images."""
    totals = {name: [] for name in METRICS}
    for sample in dataset:
        for name, metric in METRICS.items():
            totals[name].append(metric(sample['lqC'], sample['gt']))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def validation_curve(tb_dir: Path, dataset_name: str) -> tuple[list[int], list[float]]:
    """(iterations, PSNR) that BasicSR's validation logged to TensorBoard during training, read with BasicSR's own
    reader (which prints every tag it finds: kept out of the demo's output)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return read_data_from_tensorboard(str(tb_dir), f'metrics/{dataset_name}/psnr')


def zoom_window(defocus: np.ndarray, target: np.ndarray) -> tuple[int, int, int]:
    """(top, left, size) of the quarter-size window where the defocus blurred the most detail of the target."""
    size = max(defocus.shape[0] // 4, 8)
    grey = cv2.cvtColor(np.ascontiguousarray(target, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return (*most_defocused_window(defocus, size, detail=gradient_magnitude(grey)), size)


def write_side_by_side(dataset: DualPixelDataset, psnr: dict, outputs: Path, suffix: str, out_dir: Path, label: str):
    """input | network | target for every image of ``dataset`` (``psnr``: the network's per image; ``outputs``:
    the test's 16-bit outputs, ``<name>_<suffix>.png``), zoomed where the blur removed most; returns the paths."""
    paths = {}
    for sample in dataset:
        name = sample['name']
        target = tensor2img(sample['gt'])
        blurred_psnr = calculate_dp_psnr(sample['lqC'], sample['gt'])
        panels = [
            Panel(tensor2img(sample['lqC']), f'input (combined view) {blurred_psnr:.2f} dB'),
            Panel(to_float(read_image(outputs / f'{name}_{suffix}.png')), f'{label} {psnr[name]:.2f} dB'),
            Panel(target, 'target (all in focus)'),
        ]
        paths[name] = out_dir / f'{name}.png'
        side_by_side_figure(panels, zoom_window(load_defocus(set_root(dataset), name), target), paths[name])
    return paths


def most_defocused(dataset: DualPixelDataset) -> str:
    """The image with the largest mean |defocus|: the one whose figure shows deblurring best (not chosen by the
    result)."""
    root = set_root(dataset)
    amounts = {s.name: float(np.abs(load_defocus(root, s.name)).mean()) for s in dataset.samples}
    return max(amounts, key=amounts.get)
