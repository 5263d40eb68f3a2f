"""How far tiled inference is from whole-image inference, with trained weights, on held-out images (docs/inference.md).

    python scripts/measure_tiling.py -opt OPTIONS.yml --weights net_g.pth --input HELD_OUT --tile 256 --tile-overlap 64

HELD_OUT is the inputL/inputR/target layout (e.g. scripts/make_synthetic_dp.py --size 384x512). For every image:
PSNR against the target untiled and tiled, PSNR of tiled against untiled, and the mean absolute tiled - untiled
difference in the blended zones along tile borders against elsewhere; also tiled with each DMSSRM's alpha taken
from the whole image, to show how much the selection's global pooling over one tile costs.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401
from dmtnet_arch.data.data_util import VIEW_FOLDERS, pair_folder_layout  # noqa: E402
from dmtnet_arch.tools.inference import build_from_options, read_options  # noqa: E402
from dmtnet_arch.tools.scale_analysis import fixed_alpha  # noqa: E402
from dmtnet_arch.utils.img_util import read_image, to_float  # noqa: E402
from dmtnet_arch.utils.tile_util import blended_zone_mask, tiled_forward  # noqa: E402

COLUMNS = [
    'image', 'size', 'PSNR untiled', 'PSNR tiled', 'PSNR tiled, whole-image alpha', 'tiled vs untiled PSNR',
    'mean abs diff, border zones', 'elsewhere', 'elsewhere, >= overlap from image border', 'max abs diff',
]  # fmt: skip


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', required=True)
    parser.add_argument('--weights', required=True)
    parser.add_argument('--param-key', help='params or params_ema (default: params_ema when present, else params)')
    parser.add_argument('--input', required=True, help='inputL/ inputR/ target/ folders')
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--tile-overlap', type=int, default=64)
    args = parser.parse_args(argv)
    net = build_from_options(read_options(args.opt)['network_g'], args.weights, args.param_key)
    root = Path(args.input)
    samples = pair_folder_layout(*(root / VIEW_FOLDERS[v] for v in ('left', 'right', 'target')))
    has_alpha = bool(getattr(net, 'scale_weights', None))
    print('| ' + ' | '.join(COLUMNS) + ' |')
    print('|' + '---|' * len(COLUMNS))
    totals = []
    for sample in samples:
        views = [to_float(read_image(p)) for p in (sample.left, sample.right, sample.target)]
        lq = torch.from_numpy(np.concatenate(views[:2], 2).transpose(2, 0, 1).copy())[None]
        target = torch.from_numpy(views[2].transpose(2, 0, 1).copy())[None]
        with torch.inference_mode():
            whole = net(lq)
            alphas = [a.clone() for a in net.scale_weights] if has_alpha else []
            tiled = tiled_forward(net, lq, args.tile, args.tile_overlap)
            if has_alpha:
                with fixed_alpha(net, alphas):
                    tiled_alpha = tiled_forward(net, lq, args.tile, args.tile_overlap)
        diff = (tiled.clamp(0, 1) - whole.clamp(0, 1)).abs().mean(dim=1)[0]
        border = blended_zone_mask(*lq.shape[-2:], args.tile, args.tile_overlap)
        with_alpha = psnr(tiled_alpha, target) if has_alpha else float('nan')
        row = [psnr(whole, target), psnr(tiled, target), with_alpha, psnr(tiled, whole)]
        inside = ~border & away_from_image_border(border.shape, args.tile_overlap)
        row += [float(diff[border].mean()), float(diff[~border].mean()), float(diff[inside].mean()), float(diff.max())]
        totals.append(row)
        print(f'| {sample.name} | {lq.shape[-1]}x{lq.shape[-2]} | {table_cells(row)} |')
    mean = np.mean(totals, axis=0)
    print(f'| mean | | {table_cells(mean)} |')
    print(
        f'tile {args.tile}, overlap {args.tile_overlap}: tiled - untiled PSNR against the target '
        f'{mean[1] - mean[0]:+.3f} dB; with whole-image alpha {mean[2] - mean[0]:+.3f} dB'
    )


def away_from_image_border(shape, margin: int) -> torch.Tensor:
    """(H, W) bool: pixels at least ``margin`` from every image border (where a tile sees less than the image)."""
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[margin:-margin, margin:-margin] = True
    return mask


def table_cells(row) -> str:
    """Four PSNRs in dB, then absolute differences on the [0, 1] scale (NaN: no such pixel)."""
    return ' | '.join([f'{v:.2f}' for v in row[:4]] + [f'{v:.2e}' for v in row[4:]])


if __name__ == '__main__':
    main()
