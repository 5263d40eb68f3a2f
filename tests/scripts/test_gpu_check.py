"""scripts/gpu_check.sh: without a GPU it stops at once with a message saying so; GPU_CHECK_SMOKE=1 runs every
step of the check on the CPU at tiny sizes (tiny networks, compile wrappers without compiling) and prints the
table with every row measured."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'scripts' / 'gpu_check.sh'
STEPS = ('DMTNet-T forward', 'DMTNet-B forward', 'Restormer forward', 'DMTNet-B training', 'DMTNet-T training run')


def run(env_extra: dict, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHON': sys.executable, **env_extra}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
    if path is not None:
        env['PATH'] = path
    return subprocess.run(['bash', str(SCRIPT)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)


def test_without_a_gpu_it_stops_at_once_and_says_why(tmp_path):
    """No nvidia-smi on the PATH (this machine has none anyway): exit status 2 within seconds, nothing measured."""
    start = time.monotonic()
    done = run({'GPU_CHECK_SMOKE': '0'}, path=f'{tmp_path}:/usr/bin:/bin')
    assert done.returncode == 2 and time.monotonic() - start < 10
    assert 'no NVIDIA GPU here' in done.stderr and 'GPU_CHECK_SMOKE=1' in done.stderr
    assert done.stdout == ''


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a machine without a GPU')
def test_the_python_step_refuses_a_machine_without_a_gpu_too():
    """nvidia-smi may list a GPU that torch cannot use (a CPU-only torch build): the Python step says so too."""
    done = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'gpu_check.py')], capture_output=True, text=True,
                          cwd=ROOT)  # fmt: skip
    assert done.returncode == 2 and 'no CUDA GPU visible to torch' in done.stderr


@pytest.mark.slow
def test_smoke_run_on_the_cpu_prints_every_row():
    done = run({'GPU_CHECK_SMOKE': '1'})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout.split('All rows')[1]
    rows = [line for line in table.splitlines() if line.startswith('| ') and not line.startswith('| step')]
    assert sorted({row.split(' | ')[0][2:] for row in rows}) == sorted(STEPS)
    assert len(rows) == 3 * 3 + 2 + 1
    assert not any('failed' in row or 'skipped' in row for row in rows), table
    assert 'final PSNR' in rows[-1] and 'exit status 0' in rows[-1]
    assert done.stdout.startswith('SMOKE RUN on the CPU')
    assert not list((ROOT / 'experiments').glob('gpu_check_*'))  # the dry run's training folder is removed
