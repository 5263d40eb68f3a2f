"""Latency and peak memory of each network, untiled and tiled, on CPU or GPU; GPU training speed (scripts/benchmark.py).

Each measurement runs in a fresh process (``spawn``), so its peak memory is its own: on a CPU the peak resident
set size of that process during the timed passes (Linux ``VmHWM``, reset after the warm-up through
``/proc/self/clear_refs``; it includes the interpreter, torch, BasicSR and the weights, reported apart as the
resident size before the passes), on a GPU the peak memory torch allocated. The latency is the median of
``repeats`` timed forward passes after ``warmup`` untimed ones.
"""

import contextlib
import multiprocessing
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dmtnet_arch.archs.dmtnet_arch import VARIANT_DMSSRMS
from dmtnet_arch.tools.complexity import count_macs
from dmtnet_arch.utils.device_util import AMP_DTYPES
from dmtnet_arch.utils.tile_util import tiled_forward

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
    compile: bool = False
    warmup: int = 1
    repeats: int = 1
    threads: int | None = None


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


def synchronize(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def resident_gib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc/self/status, in GiB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(f'{field}:'):
            return int(line.split()[1]) / 2**20
    raise OSError(f'/proc/self/status has no {field}')


def reset_peak_resident():
    """Make the kernel's peak resident size (VmHWM) restart from the current size (Linux clear_refs 5)."""
    Path('/proc/self/clear_refs').write_text('5')


def measure(case: Case) -> dict:
    """Run one case in this process; returns the case, the median latency (s) and the peak memory (GiB)."""
    from basicsr.archs import build_network

    import dmtnet_arch  # noqa: F401  (registers the plugin in a spawned process)

    if case.threads:
        torch.set_num_threads(case.threads)
    device = torch.device(case.device)
    torch.manual_seed(0)
    net = build_network(dict(case.network)).eval().to(device)
    x = torch.rand(1, case.channels, case.height, case.width, device=device)
    if case.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    runner = torch.compile(net) if case.compile else net
    autocast = torch.autocast(device.type, dtype=AMP_DTYPES[case.amp]) if case.amp else contextlib.nullcontext()

    def forward():
        with torch.inference_mode(), autocast:
            return tiled_forward(runner, x, case.tile, case.tile_overlap) if case.tile else runner(x)

    for _ in range(case.warmup):
        forward()
    synchronize(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**30
    else:
        reset_peak_resident()
        before = resident_gib('VmRSS')
    times = []
    for _ in range(case.repeats):
        start = time.perf_counter()
        forward()
        synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == 'cuda' else resident_gib('VmHWM')
    macs = count_macs(net, tuple(x.shape))  # on the meta device: no arithmetic; tiles add their overlaps on top
    return {
        **asdict(case),
        'seconds': statistics.median(times),
        'gmacs': macs / 1e9,
        'before_gib': before,
        'peak_gib': peak,
        'threads': torch.get_num_threads(),
    }


def measure_in_fresh_process(case: Case, function=None) -> dict:
    """:func:`measure` (or ``function``) in a new interpreter, so that the peak memory belongs to this case alone."""
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(function or measure, (case,))


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


def training_iterations_per_second(network: dict, device: str, size: int = 512, batch: int = 8, iters: int = 10,
                                   amp: str | None = 'bf16') -> float:  # fmt: skip
    """GPU training speed: Adam steps per second on random (batch, 6, size, size) patches, L1 loss."""
    from basicsr.archs import build_network

    device = torch.device(device)
    net = build_network(dict(network)).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    lq, gt = torch.rand(batch, 6, size, size, device=device), torch.rand(batch, 3, size, size, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        autocast = torch.autocast(device.type, dtype=AMP_DTYPES[amp]) if amp else contextlib.nullcontext()
        with autocast:
            loss = (net(lq).float() - gt).abs().mean()
        loss.backward()
        optimizer.step()

    step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    synchronize(device)
    return iters / (time.perf_counter() - start)


def machine_line(device: str, threads: int | None = None) -> str:
    """Date, processor, torch version, threads and device, for the top of a results table."""
    name = torch.cuda.get_device_name(0) if device.startswith('cuda') else platform.processor() or platform.machine()
    return (
        f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} | {name} | torch {torch.__version__} | '
        f'{threads or torch.get_num_threads()} threads | device {device}'
    )


def table_row(result: dict, conv_rate: float | None = None) -> str:
    mode = f'tiles {result["tile"]}/{result["tile_overlap"]}' if result['tile'] else 'whole image'
    precision = result['amp'] or 'fp32'
    if result['compile'] or result['channels_last']:
        precision += ' + ' + ', '.join(k for k in ('compile', 'channels_last') if result[k])
    return (
        f'| {result["label"]} | {result["width"]}x{result["height"]} | {mode} | {result["device"]} {precision} | '
        f'{result["seconds"]:.2f} | {result["peak_gib"]:.2f} | {result["before_gib"]:.2f} | '
        f'{mac_rate(result, conv_rate)} |'
    )


def mac_rate(result: dict, conv_rate: float | None) -> str:
    """GMAC/s of a whole-image run, and its fraction of the reference convolution's rate when measured."""
    if result['tile']:
        return ''
    rate = result['gmacs'] * 1e9 / result['seconds']
    return f'{rate / 1e9:.1f}' + (f' ({rate / conv_rate:.0%} of conv)' if conv_rate else '')


TABLE_HEADER = (
    '| network | size | mode | device, precision | latency (s) | peak memory (GiB) | before the passes (GiB) '
    '| GMAC/s |\n'
    '|---|---|---|---|---|---|---|---|'
)
