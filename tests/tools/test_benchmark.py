"""scripts/benchmark.py runs at a tiny size: one row per case, each from its own process, JSON and plot written."""

import json

import pytest

import dmtnet_arch  # noqa: F401  (registers the peers)
from dmtnet_arch.tools.benchmark import networks
from tests.helpers import SMALL_S, load_script


@pytest.mark.slow
def test_benchmark_runs_at_a_tiny_size(tmp_path, capsys):
    script = load_script('benchmark')
    tiny = '--variants T --sizes 40x48 --tile 32 --tile-overlap 8 --threads 1 --warmup 0 --conv-reference'.split()
    argv = [*tiny, '--json', tmp_path / 'r.json', '--plot', tmp_path / 'latency.png']
    assert script.main([str(a) for a in argv]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| DMTNet-T')]
    assert [row.split(' | ')[1:3] for row in rows] == [['48x40', 'whole image'], ['48x40', 'tiles 32/8']]
    results = json.loads((tmp_path / 'r.json').read_text())
    assert len(results) == 2 and all(r['threads'] == 1 for r in results)
    assert all(r['seconds'] > 0 and r['peak_gib'] >= r['before_gib'] > 0 for r in results)
    assert 'GMAC/s' in rows[0] or 'of conv' in rows[0]
    assert (tmp_path / 'latency.png').read_bytes().startswith(b'\x89PNG')


@pytest.mark.slow
def test_training_speed_path_runs_on_cpu(monkeypatch):
    """The GPU training measurement's code path, on a CPU at a tiny size (no GPU here; the number is not checked):
    one warm-up step and ``iters`` timed steps, each an optimizer step."""
    import torch

    from dmtnet_arch.tools.benchmark import training_iterations_per_second

    steps = []
    original_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, 'step', lambda self, *a, **k: steps.append(1) or original_step(self, *a, **k))

    network = SMALL_S
    assert training_iterations_per_second(network, 'cpu', size=32, batch=2, iters=2, amp='bf16') > 0
    assert len(steps) == 3


def test_peers_are_benchmarked_with_the_input_channels_they_declare():
    found = {label: channels for label, _, channels in networks('T', peers=True)}
    assert found == {'DMTNet-T': 6, 'Restormer': 6, 'IFAN': 3, 'DPDNet': 6}
