"""Score a checkpoint on real dual-pixel captures with targets, in the given view order and with the views swapped.

    python scripts/real_benchmark.py --weights synthetic-T --input DIR [--csv scores.csv] [--outputs OUT]
    python scripts/real_benchmark.py -opt options/test_DMTNet_B.yml --weights W.pth --input datasets/DPDD
    python scripts/real_benchmark.py --reference DIR/dpdnet_pred --input DIR   # outputs made elsewhere

DIR is the DPDD layout (test_l/ test_r/ test_c/) or inputL/ inputR/ [inputC/] target/. Prints the blurred combined
view's and the output's PSNR/SSIM, the gain in both view orders and the margin; --csv writes one row per scene.
"""

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.inference import (  # noqa: E402
    Deblurrer,
    build_from_options,
    options_from_checkpoint,
    read_options,
    resolve_device,
    weights_path,
)
from dmtnet_arch.real_benchmark import (  # noqa: E402
    mean_score,
    run_benchmark,
    scenes_with_targets,
    score_outputs,
    summary_line,
    write_scores_csv,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', help="option file with network_g (default: the checkpoint's record)")
    parser.add_argument('--weights', help='checkpoint file or built-in name (synthetic-T)')
    parser.add_argument('--param-key', help='params or params_ema (default: params_ema when present, else params)')
    parser.add_argument('--reference', help='score this folder of outputs (<scene>.png) instead of a network')
    parser.add_argument('--input', required=True, help='real dual-pixel folder with targets')
    parser.add_argument('--split', default='test', help='DPDD split (default test)')
    parser.add_argument('--csv', help='write per-scene scores and their mean here')
    parser.add_argument('--outputs', help='write the outputs (given view order) here')
    parser.add_argument('--tile', type=int, help='tile size in pixels (default: whole image)')
    parser.add_argument('--tile-overlap', type=int, default=64, help='tile overlap in pixels (default 64)')
    parser.add_argument('--device', default='auto', help='auto (GPU if any), cpu, cuda, ...')
    parser.add_argument('--label', help='name of the row in the summary (default: the weights)')
    return parser


def network_scores(args, samples: list) -> list:
    options = read_options(args.opt) if args.opt else options_from_checkpoint(args.weights)
    weights = weights_path(options, args.weights, args.opt or '--weights')
    net = build_from_options(options['network_g'], weights, args.param_key)
    deblurrer = Deblurrer(net, resolve_device(args.device), tile=args.tile, tile_overlap=args.tile_overlap)
    return run_benchmark(
        deblurrer,
        samples,
        args.outputs,
        progress=lambda s: print(f'  {s.name}: gain {s.gain:+.2f} dB, swapped {s.gain_swapped:+.2f} dB', flush=True),
    )


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.reference) == bool(args.opt or args.weights):
        parser.error(
            'give --weights (and/or -opt) to run a network, or --reference DIR to score outputs made elsewhere'
        )
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    samples = scenes_with_targets(args.input, args.split)
    scores = score_outputs(samples, args.reference) if args.reference else network_scores(args, samples)
    if args.csv:
        write_scores_csv(args.csv, scores)
    print(summary_line(args.label or args.reference or args.weights or args.opt, mean_score(scores), len(scores)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
