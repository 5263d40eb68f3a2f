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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.data_util import VIEW_FOLDERS, pair_folder_layout  # noqa: E402
from dmtnet_arch.tools.inference import add_network_arguments, load_network  # noqa: E402
from dmtnet_arch.tools.tiling_error import TILING_COLUMNS, sample_tiling_error, table_cells  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_arguments(parser, weights_required=True)
    parser.add_argument('--input', required=True, help='inputL/ inputR/ target/ folders')
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--tile-overlap', type=int, default=64)
    return parser


def print_row(*cells):
    print('| ' + ' | '.join(cells) + ' |', flush=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    net, _ = load_network(args.opt, args.weights, args.param_key)
    root = Path(args.input)
    samples = pair_folder_layout(*(root / VIEW_FOLDERS[v] for v in ('left', 'right', 'target')))
    columns = ['image', 'size', *TILING_COLUMNS]
    print_row(*columns)
    print('|' + '---|' * len(columns))
    rows = []
    for sample in samples:
        size, row = sample_tiling_error(net, sample, args.tile, args.tile_overlap)
        rows.append(row)
        print_row(sample.name, size, *table_cells(row))
    mean = np.mean(rows, axis=0)
    print_row('mean', '', *table_cells(mean))
    print(
        f'tile {args.tile}, overlap {args.tile_overlap}: tiled - untiled PSNR against the target '
        f'{mean[1] - mean[0]:+.3f} dB; with whole-image alpha {mean[2] - mean[0]:+.3f} dB'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
