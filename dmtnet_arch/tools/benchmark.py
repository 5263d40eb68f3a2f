"""Latency and peak memory of each network and inference path, untiled and tiled, on CPU or GPU; training speed
(scripts/benchmark.py).

Each measurement runs in a fresh process (``spawn``), so its peak memory is its own: on a CPU the peak resident
set size of that process during the timed passes (Linux ``VmHWM``, reset after the warm-up through
``/proc/self/clear_refs``; it includes the interpreter, torch, BasicSR and the weights, reported apart as the
resident size before the passes), on a GPU the peak memory torch allocated. The latency is the median of
``repeats`` timed forward passes after ``warmup`` untimed ones (at least one for torch.compile, which compiles in
its first pass; that pass's time is reported too). The onnxruntime rows run the network exported by
:mod:`dmtnet_arch.tools.onnx_export` in a process without torch (:mod:`dmtnet_arch.tools.onnx_inference`).
"""

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dmtnet_arch.archs.dmtnet_arch import VARIANT_DMSSRMS
from dmtnet_arch.tools.complexity import count_macs
from dmtnet_arch.utils.device_util import PeakMemory, autocast, synchronize
from dmtnet_arch.utils.tile_util import tiled_forward

PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder holding dmtnet_arch and dmtnet_arch_startup.py

# Peers, benchmarked when registered, with their default options.
PEERS = ('Restormer', 'IFAN', 'DPDNet')


@dataclass(frozen=True)
class Case:
    """One measurement: a network at a size, whole or in tiles, with a device and precision."""

    network: dict
    label: str
    height: int
    width: int
    channels: int = 6
    tile: int | None = None
    tile_overlap: int = 64
    device: str = 'cpu'
    amp: str | None = None
    channels_last: bool = False
    compile: bool | str = False  # True: inductor; a string: that torch.compile backend
    backend: str = 'torch'  # or 'onnxruntime' (CPU, float32)
    warmup: int = 1
    repeats: int = 1
    threads: int | None = None


@dataclass(frozen=True)
class TrainCase:
    """One training-speed measurement: Adam steps on random (batch, channels, size, size) patches, L1 loss."""

    network: dict
    label: str
    size: int
    batch: int
    device: str = 'cpu'
    amp: str | None = None
    compile: bool | str = False
    iters: int = 10
    threads: int | None = None
    channels: int = 6


def networks(variants: str, peers: bool) -> list[tuple[str, dict, int]]:
    """``(label, network_g options, input channels)`` of each DMTNet variant and, if asked, each registered peer."""
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY

    from dmtnet_arch.tools.inference import input_channels

    found = [(f'DMTNet-{v}', {'type': 'DMTNet', 'variant': v}, 6) for v in variants]
    if peers:
        for name in (name for name in PEERS if name in ARCH_REGISTRY):
            found.append((name, {'type': name}, input_channels(build_network({'type': name}), {})))
    unknown = [v for v in variants if v not in VARIANT_DMSSRMS]
    if unknown:
        raise ValueError(
            f'--variants: unknown DMTNet variant(s) {unknown}; expected letters of {"".join(VARIANT_DMSSRMS)}'
        )
    return found


def build_benchmark_network(case) -> torch.nn.Module:
    """The case's network with seeded random weights (speed does not depend on training), in eval mode."""
    from basicsr.archs import build_network

    import dmtnet_arch  # noqa: F401  (registers the plugin in a spawned process)

    if case.threads:
        torch.set_num_threads(case.threads)
    torch.manual_seed(0)
    return build_network(dict(case.network))


def compiled(net: torch.nn.Module, compile: bool | str):
    """``net`` through torch.compile (True: inductor; a string: that backend), or ``net`` itself."""
    if not compile:
        return net
    return torch.compile(net, backend='inductor' if compile is True else compile)


def measure(case: Case) -> dict:
    """Run one case in this process; returns the case, the median latency (s), the first pass's time (s, with
    torch.compile's compilation) and the peak memory (GiB)."""
    device = torch.device(case.device)
    net = build_benchmark_network(case).eval().to(device)
    x = torch.rand(1, case.channels, case.height, case.width, device=device)
    if case.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    runner = compiled(net, case.compile)

    def forward():
        with torch.inference_mode(), autocast(device, case.amp):
            return tiled_forward(runner, x, case.tile, case.tile_overlap) if case.tile else runner(x)

    first = None
    for _ in range(max(case.warmup, 1 if case.compile else 0)):
        start = time.perf_counter()
        forward()
        synchronize(device)
        first = first if first is not None else time.perf_counter() - start
    times = []
    with PeakMemory(device) as memory:
        for _ in range(case.repeats):
            start = time.perf_counter()
            forward()
            synchronize(device)
            times.append(time.perf_counter() - start)
    macs = count_macs(net, tuple(x.shape))  # on the meta device: no arithmetic; tiles add their overlaps on top
    return {
        **asdict(case),
        'seconds': statistics.median(times),
        'first_seconds': first,
        'gmacs': macs / 1e9,
        'before_gib': memory.before_gib,
        'peak_gib': memory.peak_gib(),
        'threads': torch.get_num_threads(),
    }


def export_for_benchmark(case: Case, path: str) -> str:
    """The case's network, with the same seeded weights as :func:`measure`'s, exported to ONNX at ``path``."""
    from dmtnet_arch.tools.onnx_export import export_onnx

    export_onnx(build_benchmark_network(case).eval(), path, case.channels)
    return path


ONNX_CHILD = (
    'import json, sys\n'
    'import dmtnet_arch_startup\n'
    'dmtnet_arch_startup.import_package_without_registration()\n'
    'from dmtnet_arch.tools.onnx_inference import measure\n'
    'print(json.dumps(measure(**json.loads(sys.argv[1]))))\n'
)


def measure_onnxruntime(case: Case, onnx_path: str) -> dict:
    """The case on onnxruntime, in a new interpreter that imports neither torch nor basicsr: its peak memory is
    what the inference command's onnxruntime backend needs."""
    arguments = {
        'path': onnx_path,
        'shape': [1, case.channels, case.height, case.width],
        'tile': case.tile,
        'tile_overlap': case.tile_overlap,
        'warmup': case.warmup,
        'repeats': case.repeats,
        'threads': case.threads,
    }
    env = {
        **os.environ,
        'PYTHONPATH': os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get('PYTHONPATH')])),
    }
    done = subprocess.run(
        [sys.executable, '-c', ONNX_CHILD, json.dumps(arguments)], capture_output=True, text=True, env=env
    )
    if done.returncode:
        raise RuntimeError(f'onnxruntime measurement of {case.label} failed:\n{done.stderr[-3000:]}')
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**asdict(case), **result, 'first_seconds': None, 'gmacs': None, 'threads': case.threads}


def measure_in_fresh_process(case, function=None, *args):
    """:func:`measure` (or ``function(case, *args)``) in a new interpreter, so that the peak memory (and the
    compiled code) belongs to this case alone."""
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(function or measure, (case, *args))


def convolution_rate(case: Case) -> float:
    """MACs per second of a plain Conv2d(64, 64, 3) on a (1, 64, H, W) input: the best a dense convolution does
    here, the reference for each network's MAC rate (median of 9 runs after one warm-up)."""
    if case.threads:
        torch.set_num_threads(case.threads)
    device = torch.device(case.device)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    x = torch.rand(1, 64, case.height, case.width, device=device)
    times = []
    with torch.inference_mode():
        for _ in range(10):
            start = time.perf_counter()
            conv(x)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return 64 * 64 * 9 * case.height * case.width / statistics.median(times[1:])


def training_iterations_per_second(
    network: dict,
    device: str,
    size: int = 512,
    batch: int = 8,
    iters: int = 10,
    amp: str | None = 'bf16',
    compile: bool = False,
) -> float:
    """Training speed: Adam steps per second on random (batch, 6, size, size) patches, L1 loss."""
    case = TrainCase(network, '', size, batch, device, amp, compile, iters)
    return measure_training(case)['iterations_per_second']


def measure_training(case: TrainCase) -> dict:
    """:class:`TrainCase` in this process: one untimed step (torch.compile compiles the forward and backward in
    it; its time is reported), then ``iters`` timed steps."""
    device = torch.device(case.device)
    net = build_benchmark_network(case).to(device).train()
    runner = compiled(net, case.compile)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    lq = torch.rand(case.batch, case.channels, case.size, case.size, device=device)
    gt = torch.rand(case.batch, 3, case.size, case.size, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, case.amp):
            loss = (runner(lq).float() - gt).abs().mean()
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    synchronize(device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(case.iters):
        step()
    synchronize(device)
    speed = case.iters / (time.perf_counter() - start)
    return {**asdict(case), 'iterations_per_second': speed, 'first_seconds': first, 'threads': torch.get_num_threads()}


def train_row(result: dict) -> str:
    mode = ' + '.join(k for k, on in (('compile', result['compile']), (result['amp'], result['amp'])) if on) or 'eager'
    return (
        f'| {result["label"]} | {result["size"]}x{result["size"]}, batch {result["batch"]} | {result["device"]} '
        f'{mode} | {result["iterations_per_second"]:.2f} | {result["first_seconds"]:.1f} |'
    )


TRAIN_HEADER = (
    '| network | patch, batch | device, mode | training iterations/s | first step (s) |\n|---|---|---|---|---|'
)


def table_row(result: dict, conv_rate: float | None = None) -> str:
    mode = f'tiles {result["tile"]}/{result["tile_overlap"]}' if result['tile'] else 'whole image'
    precision = result['amp'] or 'fp32'
    if result.get('backend', 'torch') != 'torch':
        precision = f'{result["backend"]} {precision}'
    if result['compile'] or result['channels_last']:
        precision += ' + ' + ', '.join(k for k in ('compile', 'channels_last') if result[k])
    return (
        f'| {result["label"]} | {result["width"]}x{result["height"]} | {mode} | {result["device"]} {precision} | '
        f'{result["seconds"]:.2f} | {result["peak_gib"]:.2f} | {result["before_gib"]:.2f} | '
        f'{mac_rate(result, conv_rate)} | {first_pass(result)} |'
    )


def first_pass(result: dict) -> str:
    first = result.get('first_seconds')
    return '' if first is None else f'{first:.1f}'


def mac_rate(result: dict, conv_rate: float | None) -> str:
    """GMAC/s of a whole-image run, and its fraction of the reference convolution's rate when measured."""
    if result['tile'] or not result.get('gmacs'):
        return ''
    rate = result['gmacs'] * 1e9 / result['seconds']
    return f'{rate / 1e9:.1f}' + (f' ({rate / conv_rate:.0%} of conv)' if conv_rate else '')


TABLE_HEADER = (
    '| network | size | mode | device, precision | latency (s) | peak memory (GiB) | before the passes (GiB) '
    '| GMAC/s | first pass (s) |\n'
    '|---|---|---|---|---|---|---|---|---|'
)
