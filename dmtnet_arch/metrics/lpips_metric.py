"""LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package, only when its backbone weights are on the machine.

Nothing is downloaded: :func:`lpips_availability` says whether the package and its AlexNet backbone weights (torch
hub's cache, where torchvision keeps them) are present, and why not otherwise. Registered as ``calculate_dp_lpips``
for ``val: metrics:`` (``better: lower``); images are clamped to [0, 1] and scaled to LPIPS's [-1, 1].
"""

import functools
from pathlib import Path

import torch
from basicsr.utils.registry import METRIC_REGISTRY

from dmtnet_arch.metrics.dual_pixel_metric import to_hwc_float

BACKBONE_PATTERN = 'alexnet-owt-*.pth'


def backbone_folder() -> Path:
    return Path(torch.hub.get_dir()) / 'checkpoints'


def lpips_availability() -> tuple[bool, str]:
    """(available, reason): the lpips package and its AlexNet backbone weights, without downloading anything."""
    try:
        import lpips  # noqa: F401  (optional dependency: only checked for)
    except ImportError:
        return False, 'the lpips package is not installed (pip install lpips)'
    folder = backbone_folder()
    if not any(folder.glob(BACKBONE_PATTERN)):
        return False, f'the AlexNet backbone weights ({BACKBONE_PATTERN}) are not in {folder}; nothing is downloaded'
    return True, 'LPIPS (AlexNet, lpips package)'


@functools.cache
def lpips_network():
    available, reason = lpips_availability()
    if not available:
        raise RuntimeError(f'LPIPS is unavailable: {reason}')
    import lpips  # optional dependency, present once lpips_availability said so

    return lpips.LPIPS(net='alex', verbose=False).eval()


def to_lpips_input(img, which: str = 'img') -> torch.Tensor:
    """An image in [0, 1] (tensor or array) as a (1, 3, H, W) float tensor in [-1, 1]."""
    return torch.from_numpy(to_hwc_float(img, 'calculate_dp_lpips', which)).float().permute(2, 0, 1)[None] * 2 - 1


@METRIC_REGISTRY.register()
def calculate_dp_lpips(img, img2, **kwargs) -> float:
    """LPIPS distance between the output and the target (lower is better)."""
    unknown = sorted(set(kwargs) - {'better'})
    if unknown:
        raise ValueError(f"Unknown metric options {unknown}: calculate_dp_lpips takes only BasicSR's better")
    with torch.no_grad():
        return float(
            lpips_network()(to_lpips_input(img, 'img (the output)'), to_lpips_input(img2, 'img2 (the target)')).item()
        )
