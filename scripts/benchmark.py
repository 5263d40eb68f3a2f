"""Latency and peak memory of each DMTNet variant (and each registered peer), untiled and tiled; docs/performance.md.

    python scripts/benchmark.py --variants TSB --sizes 512x512,1120x1680 --tile 512 --plot latency.png
    python scripts/benchmark.py --device cuda --precisions fp32,bf16,fast --train   # on a GPU

Sizes are HEIGHTxWIDTH. Every case runs in a fresh process so its peak memory is its own (CPU: peak resident set
of that process; GPU: peak memory allocated by torch). --precisions: fp32, bf16, fp16 (autocast) and fast
(bf16 + torch.compile + channels-last). --train: GPU training iterations per second at 512 x 512, batch 8.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.benchmark import (  # noqa: E402
    TABLE_HEADER,
    Case,
    convolution_rate,
    machine_line,
    measure_in_fresh_process,
    networks,
    table_row,
    training_iterations_per_second,
)
from dmtnet_arch.utils.cli_util import parse_sizes  # noqa: E402
from dmtnet_arch.utils.device_util import check_device  # noqa: E402
from dmtnet_arch.utils.file_util import write_bytes_atomically  # noqa: E402

PRECISIONS = {
    'fp32': {},
    'bf16': {'amp': 'bf16'},
    'fp16': {'amp': 'fp16'},
    'fast': {'amp': 'bf16', 'compile': True, 'channels_last': True},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default='TSBLH', help='DMTNet variants, e.g. TSB')
    parser.add_argument('--peers', action='store_true', help='also each registered peer (Restormer, IFAN, DPDNet)')
    parser.add_argument('--sizes', type=parse_sizes, default=parse_sizes('512x512,1120x1680'))
    parser.add_argument('--full-size-variants', help='only these variants at sizes above 1 megapixel (slow on CPU)')
    parser.add_argument('--tile', type=int, default=512, help='tile size of the tiled runs (0: untiled only)')
    parser.add_argument('--tile-overlap', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precisions', default='fp32', help=f'comma-separated: {", ".join(PRECISIONS)}')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--threads', type=int, help='torch threads (default: torch default)')
    parser.add_argument('--train', action='store_true', help='GPU training iterations/s, 512 x 512, batch 8, bf16')
    parser.add_argument('--conv-reference', action='store_true', help="MAC rate against Conv2d(64, 64, 3)'s")
    parser.add_argument('--json', help='write every result to this JSON file')
    parser.add_argument('--plot', help='latency against megapixels (whole image, first precision) to this PNG')
    return parser


def cases(args) -> list[Case]:
    found = []
    for label, network, channels in networks(args.variants, args.peers):
        for height, width in args.sizes:
            big = height * width > 1_000_000
            if big and args.full_size_variants and not label.endswith(tuple(f'-{v}' for v in args.full_size_variants)):
                continue
            for precision in args.precisions.split(','):
                for tile in [None, args.tile] if args.tile else [None]:
                    if tile and tile >= max(height, width):
                        continue  # one tile is the whole image
                    found.append(
                        Case(
                            network,
                            label,
                            height,
                            width,
                            channels,
                            tile,
                            args.tile_overlap,
                            args.device,
                            warmup=args.warmup,
                            repeats=args.repeats,
                            threads=args.threads,
                            **PRECISIONS[precision],
                        )
                    )
    return found


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_device(args.device)  # one clear message, not a CUDA error in every measuring process
    print(machine_line(args.device, args.threads), flush=True)
    print(TABLE_HEADER, flush=True)
    results = []
    conv_rate = None
    for case in cases(args):
        if args.conv_reference and conv_rate is None:
            conv_rate = measure_in_fresh_process(case, convolution_rate)
            print(f'Conv2d(64, 64, 3) at {case.width}x{case.height}: {conv_rate / 1e9:.1f} GMAC/s', flush=True)
        result = measure_in_fresh_process(case)
        results.append(result)
        print(table_row(result, conv_rate), flush=True)
    if args.train:
        for label, network, _ in networks(args.variants, False):
            speed = training_iterations_per_second(network, args.device)
            results.append({'label': label, 'train_iterations_per_second': speed})
            print(f'{label}: {speed:.2f} training iterations/s (512 x 512, batch 8, bf16 autocast, Adam)', flush=True)
    if args.json:
        write_bytes_atomically(args.json, json.dumps(results, indent=1).encode())
    if args.plot:
        from dmtnet_arch.utils.plot_util import latency_against_size

        first = args.precisions.split(',')[0]
        series = {}
        for r in results:
            if 'seconds' in r and not r['tile'] and r['amp'] == PRECISIONS[first].get('amp'):
                series.setdefault(r['label'], []).append((r['height'] * r['width'] / 1e6, r['seconds']))
        latency_against_size(args.plot, series, f'{machine_line(args.device, args.threads)}, whole image, {first}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
