"""What DMTNet's dynamic multi-scale selection chose: per-scale features, alpha per image, and the amount of blur.

``scripts/visualize_scales.py`` calls this; :mod:`dmtnet_arch.utils.plot_util` draws the figures. The per-scale feature
maps F_scale_j (eq. 14) are read with forward hooks on each DMSSRM's scale branches, so the network is unchanged.
"""

from contextlib import contextmanager
from dataclasses import dataclass
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
from dmtnet_arch.data.synthetic_dp import has_defocus, load_defocus
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr
from dmtnet_arch.utils.img_util import img2tensor, to_float


@dataclass
class StageFeatures:
    """One DMSSRM's alpha (S,) and its per-scale maps F_scale_j and weighted sum, (C, h, w) each, on the CPU."""

    alpha: np.ndarray
    scale_maps: list
    weighted_sum: torch.Tensor


def dmssrms(net: torch.nn.Module) -> list:
    """The network's DMSSRMs in cascade order; a network without any is an error naming it."""
    stages = list(getattr(getattr(net, 'reconstruction', None), 'stages', []))
    if not stages:
        raise ValueError(f'{type(net).__name__} has no DMSSRM (DMTNet-T has none): nothing to show')
    return stages


@torch.inference_mode()
def scale_features(net: torch.nn.Module, lq: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Run ``net`` on one (1, 6, H, W) input; return its output and each DMSSRM's :class:`StageFeatures`, the maps
    cropped to the part of the feature grid that covers the image (not the padding)."""
    stages = dmssrms(net)
    captured = [[] for _ in stages]
    hooks = [
        branch.register_forward_hook(lambda _module, _args, out, store=store: store.append(out[0].float().cpu()))
        for stage, store in zip(stages, captured, strict=True)
        for branch in stage.branches
    ]
    try:
        output = net(lq)
    finally:
        for hook in hooks:
            hook.remove()
    h, w = feature_extent(lq.shape[-2:], net)
    results = []
    for stage, maps in zip(stages, captured, strict=True):
        alpha = stage.last_alpha[0].float().cpu()
        maps = [m[:, :h, :w] for m in maps]
        results.append(StageFeatures(alpha.numpy(), maps, sum(a * m for a, m in zip(alpha, maps, strict=True))))
    return output, results


def feature_extent(size, net) -> tuple[int, int]:
    """Rows and columns of the feature grid that the image covers (the rest is padding): the features are at
    1 / patch size of the image, the factor the up-sampling's pixel shuffle restores."""
    patch = net.upsampling.body[-1].upscale_factor
    return tuple(-(-side // patch) for side in size)


# ----------------------------------------------------------------------------------------------------------------
# A test set with targets, and how blurred each image is


# Column name in the CSV -> axis label.
BLUR_MEASURES = {
    'mean_abs_defocus_px': 'mean |defocus| (CoC radius, px)',
    'blurred_psnr_db': 'PSNR of the blurred image against its target (dB)',
}


@dataclass
class TestImage:
    name: str
    lq: torch.Tensor  # (1, 6, H, W)
    blur: float


def test_set_samples(root, split: str = 'test') -> tuple[list, str]:
    """Samples with targets from the inputL/inputR/target layout or the DPDD layout, and the blur measure used:
    the synthetic generator's defocus maps when the folder has them, else the blurred image's PSNR (a key of
    :data:`BLUR_MEASURES`)."""
    root = Path(root)
    if dpdd_folders(root, split)['left'][0].is_dir():
        return pair_dpdd_layout(root, split), 'blurred_psnr_db'
    folders = {view: root / name for view, name in VIEW_FOLDERS.items()}
    samples = pair_folder_layout(folders['left'], folders['right'], folders['target'])
    if has_defocus(root):
        return samples, 'mean_abs_defocus_px'
    return samples, 'blurred_psnr_db'


def read_test_image(sample, root, blur_measure: str) -> TestImage:
    """The network input of a sample and its amount of blur (mean |CoC| or PSNR of the views' mean vs target)."""
    views = {view: to_float(image) for view, image in read_sample_views(sample, ('left', 'right', 'target')).items()}
    left, right, target = views['left'], views['right'], views['target']
    lq = img2tensor(np.concatenate([left, right], 2))[None]
    if blur_measure == 'mean_abs_defocus_px':
        blur = float(np.abs(load_defocus(root, sample.name)).mean())
    else:
        blur = calculate_dp_psnr((left + right) / 2, target, protocol='float')
    return TestImage(sample.name, lq, blur)


@contextmanager
def fixed_alpha(net: torch.nn.Module, alphas: list):
    """Inside the block, each DMSSRM uses the given (N, S) alpha instead of predicting its own from the (tile's)
    global average pooling: to measure how much of the tiling error the pooling causes."""
    hooks = [
        stage.selection.register_forward_hook(lambda _module, _args, _out, a=alpha: a)
        for stage, alpha in zip(dmssrms(net), alphas, strict=True)
    ]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
