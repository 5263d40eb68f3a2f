"""Deblur your own dual-pixel photos with a trained network (DMTNet or any registered peer); docs/inference.md.

    python scripts/inference.py -opt options/test_DMTNet_B.yml [--weights W.pth] \
        (--input PATH | --left L --right R) --output DIR [--tile 256 --tile-overlap 64]
    python scripts/inference.py --weights synthetic-T --input PATH --output DIR   # the built-in checkpoint
    python scripts/inference.py --backend onnxruntime --weights net.onnx --input PATH --output DIR --tile 512

PATH is a folder in the DPDD layout (<split>_l/source, <split>_r/source), the inputL/ inputR/ layout, or a folder
of *_L / *_R pairs (also _l/_r, _left/_right); --left and --right take two files or two folders. Outputs keep the
input's name, format (PNG, TIFF; JPEG inputs give PNG) and bit depth (--bits to force). A pair that cannot be
read or run is reported and skipped; the exit status is then 1 and the failures are listed.

--backend torch (default) runs the checkpoint in PyTorch: on a GPU with bf16 autocast and channels-last, on a
CPU in float32 unless --amp bf16 / --compile are given. --backend onnxruntime runs a file written by
scripts/export_onnx.py on the CPU, in a process that imports neither torch nor basicsr (docs/performance.md).
"""

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

# dmtnet_arch is imported in main(), once the backend is known: importing the package registers its networks with
# BasicSR (torch, basicsr, OpenCV, SciPy), which the onnxruntime backend must not load.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '-opt', '--opt', help="option file: network_g and path: pretrain_network_g (default: the checkpoint's record)"
    )
    parser.add_argument(
        '--weights',
        help='checkpoint file or built-in name (synthetic-T), overriding pretrain_network_g; an .onnx file with '
        '--backend onnxruntime',
    )
    parser.add_argument('--backend', choices=('torch', 'onnxruntime'), default='torch', help='default torch')
    parser.add_argument('--param-key', help='params or params_ema (default: params_ema when present, else params)')
    parser.add_argument('--input', help='folder: DPDD layout, inputL/inputR layout, or *_L / *_R pairs')
    parser.add_argument('--split', default='test', help='DPDD split to read from --input (default test)')
    parser.add_argument('--left', help='left view file, or folder of left views')
    parser.add_argument('--right', help='right view file, or folder of right views')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument(
        '--swap-views',
        action='store_true',
        help="give the network each pair's right view as its left one and the left as its right: for files labelled "
        'the other way round from DPDD (in the order the network takes, content behind the focal plane is shifted '
        'right in the right view; docs/inference.md)',
    )
    parser.add_argument('--bits', type=int, choices=(8, 16), help='output bit depth (default: the input one)')
    parser.add_argument('--tile', type=int, help='tile size in pixels (default: whole image; tiles on OOM)')
    parser.add_argument('--tile-overlap', type=int, default=64, help='tile overlap in pixels (default 64)')
    parser.add_argument('--device', default='auto', help='auto (GPU if any), cpu, cuda, cuda:1, ... (torch backend)')
    parser.add_argument('--threads', type=int, help='CPU threads (default: the library default, one per core)')
    parser.add_argument('--amp', choices=('bf16', 'fp16'), help='mixed precision: bf16 (CPU or GPU), fp16 (GPU)')
    parser.add_argument(
        '--channels-last',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='channels-last memory layout (default: on for GPU, off for CPU)',
    )
    parser.add_argument(
        '--compile',
        nargs='?',
        const='inductor',
        default=False,
        metavar='BACKEND',
        help='torch.compile (inductor; on a CPU it needs a C++ compiler and takes minutes per new size)',
    )
    parser.add_argument('--save-alpha', metavar='CSV', help="write each DMSSRM's scale weights alpha per image")
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def find_samples(args, parser) -> tuple[str, list, list]:
    from dmtnet_arch.data.data_util import find_input_pairs
    from dmtnet_arch.tools.inference_io import pairs_from_arguments

    if bool(args.input) == bool(args.left or args.right):
        parser.error('give --input PATH, or --left and --right')
    if args.input:
        return find_input_pairs(args.input, args.split)
    if not (args.left and args.right):
        parser.error('--left and --right go together')
    return '--left/--right', *pairs_from_arguments(args.left, args.right)


def load_network(opt_file, weights, param_key):
    """:func:`dmtnet_arch.tools.inference.load_network`, imported when called so that the onnxruntime backend never
    loads torch; the torch backend builds its network through this name only."""
    import dmtnet_arch  # noqa: F401  (registers the plugin before basicsr builds networks)
    from dmtnet_arch.tools.inference import load_network as load

    return load(opt_file, weights, param_key)


def torch_deblurrer(args, log):
    """The checkpoint's network in torch, on ``--device`` with ``--amp``, ``--channels-last`` and ``--compile``."""
    import torch

    from dmtnet_arch.tools.inference import Deblurrer, input_channels, resolve_device
    from dmtnet_arch.utils.device_util import cpu_has_fast_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    net, network_options = load_network(args.opt, args.weights, args.param_key)
    channels = input_channels(net, network_options)
    device = resolve_device(args.device)
    channels_last = device.type == 'cuda' if args.channels_last is None else args.channels_last
    log.info(
        f'torch on {device}: {args.amp or "float32"}{", channels-last" if channels_last else ""}'
        f'{", torch.compile " + args.compile if args.compile else ""}'
    )
    if device.type == 'cpu' and not args.amp and cpu_has_fast_bf16():
        log.info(
            'this CPU runs bf16 natively: --amp bf16 is likely faster than float32, at a small cost in accuracy '
            '(measured in docs/performance.md)'
        )
    deblurrer = Deblurrer(
        net, device, args.amp, channels_last, args.compile, args.tile, args.tile_overlap, bool(args.save_alpha)
    )
    return deblurrer, channels, device


def onnxruntime_deblurrer(args, log):
    """The ONNX file of ``--weights`` on onnxruntime's CPU provider; torch-only options are refused by name."""
    from dmtnet_arch.tools.onnx_inference import OnnxDeblurrer, check_torch_only_options

    given = {
        '--amp': args.amp,
        '--compile': args.compile,
        '--channels-last': args.channels_last,
        '--save-alpha': args.save_alpha,
        '--param-key': args.param_key,
        '-opt': args.opt,
    }
    check_torch_only_options(given)
    if args.device not in ('auto', 'cpu'):
        raise ValueError(f'--device {args.device}: the onnxruntime backend runs on the CPU; use --backend torch')
    deblurrer = OnnxDeblurrer(args.weights, args.tile, args.tile_overlap, args.threads)
    log.info(f'onnxruntime on the CPU: {args.weights}, float32')
    return deblurrer, deblurrer.channels, 'cpu'


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    log = logging.getLogger('dmtnet_arch.tools.inference')
    if args.backend == 'onnxruntime':
        if not args.weights:
            parser.error('--backend onnxruntime needs --weights FILE.onnx (written by scripts/export_onnx.py)')
        import dmtnet_arch_startup

        dmtnet_arch_startup.import_package_without_registration()  # no-op when the package is already imported
    elif not (args.opt or args.weights):
        parser.error('give -opt OPTIONS, --weights CHECKPOINT (a file or built-in name such as synthetic-T), or both')
    from dmtnet_arch.tools.inference_io import check_output_folder, deblur_all, swapped_views, write_alpha_csv

    layout, samples, failures = find_samples(args, parser)
    if args.swap_views:
        samples = swapped_views(samples)
        log.info("--swap-views: each pair's right view goes to the network as its left view, and the left as its right")
    check_output_folder(args.output, {'--input': args.input, '--left': args.left, '--right': args.right})
    log.info(f'{len(samples)} pairs found ({layout}); {len(failures)} files could not be paired')
    build = onnxruntime_deblurrer if args.backend == 'onnxruntime' else torch_deblurrer
    deblurrer, channels, device = build(args, log)
    report = deblur_all(deblurrer, samples, args.output, channels, args.bits, progress=not args.quiet)
    report.failures = failures + report.failures
    if args.save_alpha:
        write_alpha_csv(args.save_alpha, report.alphas)
    print(report.summary(device))
    if report.failures:
        print(f'{len(report.failures)} failed:\n  ' + '\n  '.join(report.failures), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
