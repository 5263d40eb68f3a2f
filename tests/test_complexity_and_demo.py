"""Table 1 complexity targets, and the README's main command (the demo) end to end at a tiny size."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.tools.complexity import count_macs, count_parameters
from dmtnet_arch.tools.published import DMTNET_COMPLEXITY
from dmtnet_arch.utils.plot_util import most_defocused_window

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('variant', list(DMTNET_COMPLEXITY))
def test_complexity_within_table1_targets(variant):
    paper_params, paper_gmacs = DMTNET_COMPLEXITY[variant]
    net = DMTNet(variant=variant)
    params = count_parameters(net) / 1e6
    gmacs = count_macs(net, (1, 6, 1120, 1680)) / 1e9
    assert abs(params - paper_params) / paper_params <= (0.05 if variant == 'T' else 0.03)
    assert abs(gmacs - paper_gmacs) / paper_gmacs <= 0.15


def printed_path(lines: list[str], prefix: str) -> Path:
    """The path at the end of the demo's output line that starts with ``prefix``."""
    line = next(line for line in lines if line.startswith(prefix))
    return ROOT / line.split(': ')[-1].strip()


def assert_png(path: Path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 3 and min(image.shape[:2]) > 100, path


def test_demo_runs_end_to_end_and_prints_the_table():
    """A few iterations only: this shows the pipeline works, not the gain of a full run (README)."""
    command = [sys.executable, str(ROOT / 'scripts' / 'demo.py'), '--iterations', '4', '--train-count', '4',
               '--val-count', '2', '--test-count', '2', '--size', '64']  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    blurred = next(line for line in lines if line.startswith('| blurred combined view |'))
    restored = next(line for line in lines if line.startswith('| DMTNet-T |'))
    for row in (blurred, restored):
        psnr, ssim, mae = (float(cell) for cell in row.strip('|').split('|')[1:])
        assert 5 < psnr < 60 and 0 < ssim <= 1 and 0 <= mae < 1
    assert '4 iterations' in result.stdout
    results = ROOT / 'results' / 'DMTNet_T_synthetic_test'
    side_by_side = printed_path(lines, 'Side by side')
    assert side_by_side.parent == results / 'side_by_side'
    assert sorted(p.name for p in side_by_side.parent.glob('*.png')) == ['000000.png', '000001.png']
    for figure in side_by_side.parent.glob('*.png'):
        assert_png(figure)
    curve = printed_path(lines, 'Validation PSNR against iteration')
    assert curve == results / 'validation_psnr.png'
    assert_png(curve)
    # the inference command ran once on a held-out pair and wrote its output
    assert (results / 'own_photos' / f'{side_by_side.stem}.png').is_file()
    assert any(line.strip().startswith('ran it on held-out pair') for line in lines)
    assert '[demo] finished in' in result.stdout


def test_zoom_window_is_the_most_defocused_region():
    defocus = np.zeros((64, 48), np.float32)
    defocus[40:52, 8:20] = -6.0  # sign does not matter: |defocus|
    defocus[0:4, 0:4] = 3.0
    assert most_defocused_window(defocus, 12) == (40, 8)
    # a window larger than the image is clipped to 48 x 48; the first that holds the whole blurred block
    assert most_defocused_window(defocus, 100) == (4, 0)
    detail = np.zeros_like(defocus)
    detail[0:4, 0:4] = 1.0  # weighted by detail, only the small block counts
    assert most_defocused_window(defocus, 12, detail) == (0, 0)
