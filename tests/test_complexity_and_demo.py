"""Table 1 complexity targets, and the README's main command (the demo) end to end at a tiny size."""

import subprocess
import sys
from pathlib import Path

import pytest

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.complexity import PAPER_TABLE1, count_macs, count_parameters

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('variant', list(PAPER_TABLE1))
def test_complexity_within_table1_targets(variant):
    paper_params, paper_gmacs = PAPER_TABLE1[variant]
    net = DMTNet(variant=variant)
    params = count_parameters(net) / 1e6
    gmacs = count_macs(net, (1, 6, 1120, 1680)) / 1e9
    assert abs(params - paper_params) / paper_params <= (0.05 if variant == 'T' else 0.03)
    assert abs(gmacs - paper_gmacs) / paper_gmacs <= 0.15


def test_demo_runs_end_to_end_and_prints_the_table():
    """A few iterations only: this shows the pipeline works, not the +1 dB of a full run (README)."""
    command = [sys.executable, str(ROOT / 'scripts' / 'demo.py'), '--train-minutes', '0', '--min-iter', '4',
               '--train-count', '4', '--test-count', '2', '--size', '64']  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    blurred = next(line for line in lines if line.startswith('| blurred combined view |'))
    restored = next(line for line in lines if line.startswith('| DMTNet-T |'))
    for row in (blurred, restored):
        psnr, ssim, mae = (float(cell) for cell in row.strip('|').split('|')[1:])
        assert 5 < psnr < 60 and 0 < ssim <= 1 and 0 <= mae < 1
    strips = sorted((ROOT / 'results' / 'DMTNet_T_synthetic_test' / 'side_by_side').glob('*.png'))
    assert len(strips) == 2
