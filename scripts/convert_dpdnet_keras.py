"""Convert DPDNet's official Keras weights to a BasicSR checkpoint for the RGB ``DPDNet`` arch.

python scripts/convert_dpdnet_keras.py --input defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5 --output DPDNet.pth
The checkpoint holds the weights under ``params`` and what built them under ``built_with`` (checked on load); use
it as ``path: pretrain_network_g`` in options/test_DPDNet.yml.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.convert_dpdnet_keras import convert_dpdnet_keras  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--input', required=True, help='the official whole-model Keras HDF5 file')
    parser.add_argument('--output', required=True, help='the BasicSR checkpoint to write (.pth)')
    parser.add_argument('--base-channels', type=int, default=64, help='width of the first level (official: 64)')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    net = convert_dpdnet_keras(args.input, args.output, args.base_channels)
    count = sum(p.numel() for p in net.parameters())
    print(f'{args.output}: DPDNet weights from {args.input} ({count:,} parameters, channels reordered BGR -> RGB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
