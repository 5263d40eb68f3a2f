"""The README's main command, the demo, end to end at a tiny size."""

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import dmtnet_arch  # noqa: F401
from tests.helpers import REPO


def printed_path(lines: list[str], prefix: str) -> Path:
    """The path at the end of the demo's output line that starts with ``prefix``."""
    line = next(line for line in lines if line.startswith(prefix))
    return REPO / line.split(': ')[-1].strip()


def assert_png(path: Path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 3 and min(image.shape[:2]) > 100, path


@pytest.mark.slow
def test_demo_runs_end_to_end_and_prints_the_table():
    """A few iterations only: this shows the pipeline works, not the gain of a full run (README)."""
    tiny = '--iterations 4 --train-count 4 --val-count 2 --test-count 2 --size 64'.split()
    command = [sys.executable, str(REPO / 'scripts' / 'demo.py'), *tiny]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    blurred = next(line for line in lines if line.startswith('| blurred combined view |'))
    restored = next(line for line in lines if line.startswith('| DMTNet-T |'))
    for row in (blurred, restored):
        psnr, ssim, mae = (float(cell) for cell in row.strip('|').split('|')[1:])
        assert 5 < psnr < 60 and 0 < ssim <= 1 and 0 <= mae < 1
    assert '4 iterations' in result.stdout
    results = REPO / 'results' / 'DMTNet_T_synthetic_test'
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
