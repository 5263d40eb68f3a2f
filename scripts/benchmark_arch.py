"""Forward speed of every DMTNet variant against a plain 64-channel 3x3 convolution, in one process.

For each variant: median forward time of a (1, 6, S, S) input, its MACs (flop counter / 2) and its MAC rate as a
fraction of the rate of Conv2d(64, 64, 3) on a (1, 64, S, S) input, the best a dense convolution does here.
"""

import argparse
import contextlib
import datetime
import platform
import statistics
import time

import torch
from torch import nn

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import VARIANT_DMSSRMS, DMTNet
from dmtnet_arch.complexity import count_macs


def synchronize(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_seconds(fn, x: torch.Tensor, repeats: int) -> float:
    """Median wall time of ``fn(x)`` after one warm-up call."""
    fn(x)
    synchronize(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast_context(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast (GPU)')
    parser.add_argument('--variants', default=''.join(VARIANT_DMSSRMS))
    args = parser.parse_args()
    device = torch.device(args.device)
    size = args.size
    print(f'{datetime.date.today()} | {platform.processor() or platform.machine()} | torch {torch.__version__} | '
          f'{torch.get_num_threads()} threads | device {device} | bf16 {args.bf16} | input {size}x{size}')  # fmt: skip

    with torch.inference_mode(), autocast_context(device, args.bf16):
        conv = nn.Conv2d(64, 64, 3, padding=1).to(device)
        conv_seconds = median_seconds(conv, torch.rand(1, 64, size, size, device=device), args.repeats * 3)
        conv_rate = 64 * 64 * 9 * size * size / conv_seconds
        print(f'Conv2d(64, 64, 3) at {size}x{size}: {conv_seconds * 1e3:.1f} ms, {conv_rate / 1e9:.1f} GMAC/s')
        quarter = size // 4  # where DMTNet's DMSSRMs work: a context line, not the reference
        quarter_seconds = median_seconds(conv, torch.rand(1, 64, quarter, quarter, device=device), args.repeats * 9)
        quarter_rate = 64 * 64 * 9 * quarter * quarter / quarter_seconds
        print(f'Conv2d(64, 64, 3) at {quarter}x{quarter} (for context): {quarter_rate / 1e9:.1f} GMAC/s')
        print('| variant | forward (ms) | GMACs | GMAC/s | fraction of conv rate |')
        print('|---|---|---|---|---|')
        for variant in args.variants:
            net = DMTNet(variant=variant).eval()
            macs = count_macs(net, (1, 6, size, size))
            seconds = median_seconds(net.to(device), torch.rand(1, 6, size, size, device=device), args.repeats)
            rate = macs / seconds
            print(f'| DMTNet-{variant} | {seconds * 1e3:.0f} | {macs / 1e9:.1f} | {rate / 1e9:.1f} | '
                  f'{rate / conv_rate:.0%} |', flush=True)  # fmt: skip


if __name__ == '__main__':
    main()
