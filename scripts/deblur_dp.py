"""Deblur your own dual-pixel photo: left and right views in, one sharp 16-bit PNG out.

    python scripts/deblur_dp.py --left IMG_L.png --right IMG_R.png --weights net_g_latest.pth --variant B \
        --out IMG_sharp.png [--opt options/train_DMTNet_B.yml] [--tile 512 --tile-overlap 32] [--device cuda]

The views are read at their own bit depth (8 or 16 bit, both the same) and scaled to [0, 1], the network sees
them left then right, and the output is written as a 16-bit RGB PNG. ``--opt`` takes ``network_g`` from an
option file (for networks trained with non-default structural numbers) instead of ``--variant``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.archs import build_network  # noqa: E402

import dmtnet_arch  # noqa: E402,F401  (registers the plugin)
from dmtnet_arch.checkpoint import load_network_weights  # noqa: E402
from dmtnet_arch.data.dual_pixel_io import check_views_match, read_image, to_float  # noqa: E402
from dmtnet_arch.models.dual_pixel_model import tiled_forward, write_png16  # noqa: E402


def network_options(args) -> dict:
    """``network_g`` of the option file, or DMTNet of the given variant."""
    if args.opt:
        options = yaml.safe_load(Path(args.opt).read_text())
        if 'network_g' not in options:
            raise ValueError(f'{args.opt}: no network_g section')
        return options['network_g']
    return {'type': 'DMTNet', 'variant': args.variant}


def read_pair(left: str, right: str) -> torch.Tensor:
    """(1, 6, H, W) float tensor, left view then right view, each scaled by its own bit depth."""
    views = {left: read_image(left), right: read_image(right)}
    check_views_match(views)
    stacked = np.concatenate([to_float(image) for image in views.values()], axis=2)
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(2, 0, 1)))[None]


def deblur(args) -> torch.Tensor:
    device = torch.device(args.device)
    net = build_network(dict(network_options(args)))
    load_network_weights(net, args.weights, args.param_key)
    net = net.to(device).eval()
    lq = read_pair(args.left, args.right).to(device)
    with torch.no_grad():
        output = tiled_forward(net, lq, args.tile, args.tile_overlap) if args.tile else net(lq)
    return output[0].clamp(0, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--left', required=True, help='left view (PNG, 8 or 16 bit)')
    parser.add_argument('--right', required=True, help='right view, same size and bit depth')
    parser.add_argument('--weights', required=True, help='checkpoint written by training (net_g_*.pth)')
    parser.add_argument('--out', required=True, help='output 16-bit PNG')
    parser.add_argument('--variant', default='B', help='T, S, B, L or H (ignored with --opt)')
    parser.add_argument('--opt', help='option file whose network_g describes the network')
    parser.add_argument('--param-key', help='params or params_ema (default: params_ema when present)')
    parser.add_argument('--tile', type=int, help='tile size for images that do not fit in memory')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    write_png16(deblur(args), args.out)
    print(f'wrote {args.out} (16-bit RGB PNG)')


if __name__ == '__main__':
    main()
