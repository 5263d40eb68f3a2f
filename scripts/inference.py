"""Deblur your own dual-pixel photos with a trained network (DMTNet or any registered peer); docs/inference.md.

    python scripts/inference.py -opt options/test_DMTNet_B.yml [--weights W.pth] \
        (--input PATH | --left L --right R) --output DIR [--tile 256 --tile-overlap 64]
    python scripts/inference.py --weights synthetic-T --input PATH --output DIR   # the built-in checkpoint

PATH is a folder in the DPDD layout (<split>_l/source, <split>_r/source), the inputL/ inputR/ layout, or a folder
of *_L / *_R pairs (also _l/_r, _left/_right); --left and --right take two files or two folders. Outputs keep the
input's name, format (PNG, TIFF; JPEG inputs give PNG) and bit depth (--bits to force). A pair that cannot be
read or run is reported and skipped; the exit status is then 1 and the failures are listed.
"""

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.data_util import find_input_pairs  # noqa: E402
from dmtnet_arch.tools.inference import (  # noqa: E402
    Deblurrer,
    add_network_arguments,
    check_output_folder,
    deblur_all,
    input_channels,
    load_network,
    pairs_from_arguments,
    resolve_device,
    write_alpha_csv,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_arguments(parser, opt_required=False)
    parser.add_argument('--input', help='folder: DPDD layout, inputL/inputR layout, or *_L / *_R pairs')
    parser.add_argument('--split', default='test', help='DPDD split to read from --input (default test)')
    parser.add_argument('--left', help='left view file, or folder of left views')
    parser.add_argument('--right', help='right view file, or folder of right views')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--bits', type=int, choices=(8, 16), help='output bit depth (default: the input one)')
    parser.add_argument('--tile', type=int, help='tile size in pixels (default: whole image; tiles on OOM)')
    parser.add_argument('--tile-overlap', type=int, default=64, help='tile overlap in pixels (default 64)')
    parser.add_argument('--device', default='auto', help='auto (GPU if any), cpu, cuda, cuda:1, ...')
    parser.add_argument('--amp', choices=('bf16', 'fp16'), help='mixed precision (fp16 on GPU only)')
    parser.add_argument(
        '--channels-last',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='channels-last memory layout (default: on for GPU, off for CPU)',
    )
    parser.add_argument(
        '--compile', nargs='?', const='inductor', default=False, metavar='BACKEND', help='torch.compile (inductor)'
    )
    parser.add_argument('--save-alpha', metavar='CSV', help="write each DMSSRM's scale weights alpha per image")
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def find_samples(args, parser) -> tuple[str, list, list]:
    if bool(args.input) == bool(args.left or args.right):
        parser.error('give --input PATH, or --left and --right')
    if args.input:
        return find_input_pairs(args.input, args.split)
    if not (args.left and args.right):
        parser.error('--left and --right go together')
    return '--left/--right', *pairs_from_arguments(args.left, args.right)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    log = logging.getLogger('dmtnet_arch.tools.inference')
    if not (args.opt or args.weights):
        parser.error('give -opt OPTIONS, --weights CHECKPOINT (a file or built-in name such as synthetic-T), or both')
    layout, samples, failures = find_samples(args, parser)
    check_output_folder(args.output, {'--input': args.input, '--left': args.left, '--right': args.right})
    log.info(f'{len(samples)} pairs found ({layout}); {len(failures)} files could not be paired')
    net, network_options = load_network(args.opt, args.weights, args.param_key)
    channels = input_channels(net, network_options)
    device = resolve_device(args.device)
    channels_last = device.type == 'cuda' if args.channels_last is None else args.channels_last
    deblurrer = Deblurrer(
        net, device, args.amp, channels_last, args.compile, args.tile, args.tile_overlap, bool(args.save_alpha)
    )
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
