"""Latency and peak memory of each DMTNet variant (and each registered peer) and inference path, untiled and tiled,
and training speed, side by side in one run; docs/performance.md.

    python scripts/benchmark.py --variants TB --sizes 512x512,1120x1680 --tile 512 \
        --precisions fp32,bf16,compile,compile-bf16,channels-last,onnxruntime --train T:64:4,B:256:2
    python scripts/benchmark.py --device cuda --precisions fp32,bf16,fast --train   # on a GPU

Sizes are HEIGHTxWIDTH. Every case runs in a fresh process so its peak memory is its own (CPU: peak resident set
of that process; GPU: peak memory allocated by torch). --precisions (inference paths): fp32, bf16, fp16
(autocast), compile (torch.compile, inductor), compile-bf16, channels-last, fast (bf16 + compile + channels-last)
and onnxruntime (the network exported to ONNX, run in a process without torch; CPU, float32).
--train [VARIANT:SIZE:BATCH,...]: training iterations per second (default: T:64:4,B:256:2 on a CPU, each
variant at 512:8 on a GPU), in each of --train-modes (eager, bf16, compile, compile-bf16, fp16).
"""

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.benchmark import (  # noqa: E402
    TABLE_HEADER,
    TRAIN_HEADER,
    Case,
    TrainCase,
    convolution_rate,
    export_for_benchmark,
    measure_in_fresh_process,
    measure_onnxruntime,
    measure_training,
    networks,
    table_row,
    train_row,
)
from dmtnet_arch.utils.cli_util import parse_sizes  # noqa: E402
from dmtnet_arch.utils.device_util import check_device, describe_machine  # noqa: E402
from dmtnet_arch.utils.file_util import write_bytes_atomically  # noqa: E402

PRECISIONS = {
    'fp32': {},
    'bf16': {'amp': 'bf16'},
    'fp16': {'amp': 'fp16'},
    'compile': {'compile': True},
    'compile-bf16': {'amp': 'bf16', 'compile': True},
    'channels-last': {'channels_last': True},
    'fast': {'amp': 'bf16', 'compile': True, 'channels_last': True},
    'onnxruntime': {'backend': 'onnxruntime'},
}
TRAIN_MODES = {'eager': {}, **{name: PRECISIONS[name] for name in ('bf16', 'fp16', 'compile', 'compile-bf16')}}


def parse_choices(text: str, known: dict, option: str) -> list[str]:
    names = [name for name in text.split(',') if name]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f'{option}: unknown {", ".join(unknown)}; expected some of {", ".join(known)}')
    return names


def parse_train(text: str) -> list[tuple[str, int, int]]:
    """'T:64:4,B:256:2' -> [('T', 64, 4), ('B', 256, 2)]: variant, patch size, batch."""
    found = []
    for item in text.split(','):
        parts = item.split(':')
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            raise argparse.ArgumentTypeError(f'--train takes VARIANT:SIZE:BATCH separated by commas, got {item!r}')
        found.append((parts[0], int(parts[1]), int(parts[2])))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default='TSBLH', help='DMTNet variants, e.g. TSB')
    parser.add_argument('--peers', action='store_true', help='also each registered peer (Restormer, IFAN, DPDNet)')
    parser.add_argument('--sizes', type=parse_sizes, default=parse_sizes('512x512,1120x1680'))
    parser.add_argument('--full-size-variants', help='only these variants at sizes above 1 megapixel (slow on CPU)')
    parser.add_argument('--tile', type=int, default=512, help='tile size of the tiled runs (0: untiled only)')
    parser.add_argument('--tile-overlap', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--precisions',
        default=['fp32'],
        type=lambda text: parse_choices(text, PRECISIONS, '--precisions'),
        help=f'inference paths, comma-separated: {", ".join(PRECISIONS)}',
    )
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--threads', type=int, help='torch threads (default: torch default)')
    parser.add_argument(
        '--train',
        nargs='?',
        const='default',
        help='training iterations/s for VARIANT:SIZE:BATCH,... (default T:64:4,B:256:2 on CPU, each variant 512:8 GPU)',
    )
    parser.add_argument(
        '--train-modes',
        default=None,
        type=lambda text: parse_choices(text, TRAIN_MODES, '--train-modes'),
        help='eager, bf16, fp16, compile, compile-bf16 (default: eager,bf16,compile on CPU; bf16,compile-bf16 on GPU)',
    )
    parser.add_argument('--train-iters', type=int, default=10, help='timed training steps per case (default 10)')
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
            for precision in args.precisions:
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


def first_line(error: BaseException) -> str:
    text = str(error)
    return f'{type(error).__name__}: {text.splitlines()[0] if text else ""}'


def inference_path(result: dict) -> str | None:
    """The --precisions name of a result's settings."""
    settings = {key: result.get(key) for key in ('amp', 'compile', 'channels_last', 'backend')}
    defaults = {'amp': None, 'compile': False, 'channels_last': False, 'backend': 'torch'}
    return next((name for name, extra in PRECISIONS.items() if {**defaults, **extra} == settings), None)


def train_cases(args) -> list[TrainCase]:
    """--train and --train-modes as cases; the defaults depend on the device (module docstring)."""
    if not args.train:
        return []
    gpu = args.device.startswith('cuda')
    specs = args.train
    if specs == 'default':
        specs = ','.join(f'{v}:512:8' for v in args.variants) if gpu else 'T:64:4,B:256:2'
    modes = args.train_modes or (['bf16', 'compile-bf16'] if gpu else ['eager', 'bf16', 'compile'])
    found = []
    for variant, size, batch in parse_train(specs):
        ((label, network, channels),) = networks(variant, False)
        for mode in modes:
            found.append(
                TrainCase(
                    network,
                    label,
                    size,
                    batch,
                    args.device,
                    iters=args.train_iters,
                    threads=args.threads,
                    channels=channels,
                    **TRAIN_MODES[mode],
                )
            )
    return found


def measure_case(case: Case, onnx_files: dict, folder: str) -> dict:
    """A torch case in a fresh process; an onnxruntime one on its network's ONNX file (exported once per network)."""
    if case.backend == 'torch':
        return measure_in_fresh_process(case)
    if case.device != 'cpu':
        raise ValueError(f'--precisions onnxruntime runs on the CPU, not on --device {case.device}')
    if case.label not in onnx_files:
        path = str(Path(folder) / f'{case.label}.onnx')
        onnx_files[case.label] = measure_in_fresh_process(case, export_for_benchmark, path)
    return measure_onnxruntime(case, onnx_files[case.label])


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_device(args.device)  # one clear message, not a CUDA error in every measuring process
    machine = describe_machine(args.device, args.threads)
    print(machine, flush=True)
    print(TABLE_HEADER, flush=True)
    results = []
    conv_rate = None
    with tempfile.TemporaryDirectory(prefix='benchmark_onnx_') as folder:
        onnx_files = {}
        for case in cases(args):
            if args.conv_reference and conv_rate is None:
                conv_rate = measure_in_fresh_process(case, convolution_rate)
                print(f'Conv2d(64, 64, 3) at {case.width}x{case.height}: {conv_rate / 1e9:.1f} GMAC/s', flush=True)
            try:
                result = measure_case(case, onnx_files, folder)
            except Exception as error:  # one path that cannot run here (no compiler, say) must not lose the others
                print(
                    f'| {case.label} | {case.width}x{case.height} | {inference_path(asdict(case))} failed: '
                    f'{first_line(error)} |',
                    flush=True,
                )
                continue
            results.append(result)
            print(table_row(result, conv_rate), flush=True)
    training = train_cases(args)
    if training:
        print(f'\n{TRAIN_HEADER}', flush=True)
    for case in training:
        try:
            result = measure_in_fresh_process(case, measure_training)
        except Exception as error:
            print(
                f'| {case.label} | {case.size}x{case.size}, batch {case.batch} | failed: {first_line(error)} |',
                flush=True,
            )
            continue
        results.append(result)
        print(train_row(result), flush=True)
    if args.json:
        rows = [{**result, 'machine': machine} for result in results]
        write_bytes_atomically(args.json, json.dumps(rows, indent=1).encode())
    if args.plot:
        from dmtnet_arch.utils.plot_util import latency_against_size

        first = args.precisions[0]
        series = {}
        for r in results:
            if 'seconds' in r and not r['tile'] and inference_path(r) == first:
                series.setdefault(r['label'], []).append((r['height'] * r['width'] / 1e6, r['seconds']))
        latency_against_size(args.plot, series, f'{machine}, whole image, {first}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
