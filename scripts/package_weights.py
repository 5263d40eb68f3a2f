"""Package a training checkpoint as a network-only file (params_ema when saved) with its built_with record.

    python scripts/package_weights.py --checkpoint experiments/DMTNet_T_builtin/models/net_g_latest.pth \
        --output dmtnet_arch/weights/synthetic-T.pth --note "DMTNet-T, synthetic data only (...)"
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.inference import PARAM_KEY_HELP  # noqa: E402
from dmtnet_arch.utils.checkpoint import package_checkpoint  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', required=True, help='BasicSR net_g_*.pth written by this plugin')
    parser.add_argument('--output', required=True, help='file to write')
    parser.add_argument('--param-key', help=PARAM_KEY_HELP)
    parser.add_argument('--note', default='', help='what the weights were trained on (stored in the file)')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    packaged = package_checkpoint(args.checkpoint, args.output, args.param_key, args.note)
    size = os.path.getsize(args.output) / 2**20
    print(
        f'wrote {args.output}: {len(packaged["params"])} tensors, {size:.1f} MiB, built with {packaged["built_with"]}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
