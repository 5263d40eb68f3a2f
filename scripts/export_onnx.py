"""Export a trained network to ONNX (dynamic height and width by default); docs/inference.md.

    python scripts/export_onnx.py -opt options/test_DMTNet_B.yml [--weights W.pth] --output model.onnx \
        [--height H --width W]

The file takes (N, 6, H, W) float32 in [0, 1], left view then right view (3 channels for single-image networks),
and returns (N, 3, H, W). After writing, onnxruntime is run on a random input and compared with PyTorch.
Needs the optional extra: pip install .[export]
"""

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.inference import add_network_arguments, input_channels, load_network  # noqa: E402
from dmtnet_arch.tools.onnx_export import (  # noqa: E402
    OPSET,
    check_export_arguments,
    export_onnx,
    parity_error,
    trace_size,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_arguments(parser)
    parser.add_argument('--output', required=True, help='the .onnx file to write')
    parser.add_argument('--height', type=int, help='fixed input height (with --width); default: dynamic')
    parser.add_argument('--width', type=int, help='fixed input width (with --height); default: dynamic')
    parser.add_argument('--opset', type=int, default=OPSET, help=f'ONNX opset (default {OPSET})')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_export_arguments(args.height, args.width, args.opset)  # before the network is built
    net, network_options = load_network(args.opt, args.weights, args.param_key)
    channels = input_channels(net, network_options)
    info = export_onnx(net, args.output, channels, args.height, args.width, args.opset)
    check_size = (args.height, args.width) if args.height else tuple(s + 2 for s in trace_size(net))
    error = parity_error(net, args.output, torch.rand(1, channels, *check_size))
    size_note = f'any H, W >= {info["smallest_side"]}' if info['dynamic'] else 'this size only: pad or tile to it'
    print(
        f'wrote {args.output}: input {info["input"]} ({size_note}), opset {info["opset"]}; '
        f'onnxruntime vs PyTorch at {check_size[0]}x{check_size[1]}: max abs difference {error:.2e}'
    )
    return 0 if error < 1e-4 else 1


if __name__ == '__main__':
    sys.exit(main())
