"""Score a checkpoint on real dual-pixel captures with targets, in the given view order and with the views swapped.

    python scripts/real_benchmark.py --weights synthetic-T --input DIR [--csv scores.csv] [--outputs OUT]
    python scripts/real_benchmark.py -opt options/test_DMTNet_B.yml --weights W.pth --input datasets/DPDD
    python scripts/real_benchmark.py --reference DIR/dpdnet_pred --input DIR   # outputs made elsewhere
    python scripts/real_benchmark.py --weights synthetic-T --weights W.pth --reference DIR/dpdnet_pred \
        --input DIR --table table.md --csv-dir scores/                          # several: a table

DIR is the DPDD layout (test_l/ test_r/ test_c/) or inputL/ inputR/ [inputC/] target/. Prints the blurred combined
view's and the output's PSNR/SSIM, the gain in both view orders and the margin of each model; --csv-dir writes one
CSV per model (a row per scene and their mean), --table a markdown table of all. --by-blur also scores the textured
48 px blocks per measured blur size (disc radius < 1, 1-3, 3-6, 6-10, >= 10 px; measured from the target and the
combined view, as scripts/measure_dp_statistics.py does): where a model gains and where it does not.
"""

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.tools.inference import (  # noqa: E402
    Deblurrer,
    add_network_arguments,
    load_network,
    resolve_device,
)
from dmtnet_arch.tools.real_benchmark import (  # noqa: E402
    BlurBreakdown,
    breakdown_csv,
    breakdown_lines,
    markdown_table,
    mean_score,
    run_benchmark,
    scenes_with_targets,
    score_outputs,
    summary_line,
    write_scores_csv,
)
from dmtnet_arch.utils.file_util import write_bytes_atomically  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_arguments(parser, opt_required=False, many=True)
    parser.add_argument(
        '--reference', action='append', default=[], help='a folder of outputs made elsewhere (<scene>.png); repeatable'
    )
    parser.add_argument('--input', required=True, help='real dual-pixel folder with targets')
    parser.add_argument('--split', default='test', help='DPDD split (default test)')
    parser.add_argument('--csv-dir', help="write each model's per-scene scores and their mean here (<label>.csv)")
    parser.add_argument('--table', help='write a markdown table of every model here')
    parser.add_argument('--outputs', help="write each network's outputs (given view order) under here (<label>/)")
    parser.add_argument(
        '--by-blur',
        action='store_true',
        help='also report the gains per measured blur size (disc radius bins of textured 48 px blocks); with '
        '--csv-dir, <label>_by_blur.csv',
    )
    parser.add_argument('--tile', type=int, help='tile size in pixels (default: whole image)')
    parser.add_argument('--tile-overlap', type=int, default=64, help='tile overlap in pixels (default 64)')
    parser.add_argument('--device', default='auto', help='auto (GPU if any), cpu, cuda, ...')
    return parser


def network_scores(args, weights: str | None, label: str, samples: list, breakdown) -> list:
    net, _ = load_network(args.opt, weights, args.param_key)
    deblurrer = Deblurrer(net, resolve_device(args.device), tile=args.tile, tile_overlap=args.tile_overlap)
    outputs = Path(args.outputs) / label if args.outputs else None
    return run_benchmark(
        deblurrer,
        samples,
        outputs,
        progress=lambda s: print(f'  {s.name}: gain {s.gain:+.2f} dB, swapped {s.gain_swapped:+.2f} dB', flush=True),
        breakdown=breakdown,
    )


def row_label(source: str, parents: int = 0) -> str:
    """A model's name in the table and its file names: a built-in name, else the file or folder name, after the
    names of its ``parents`` nearest folders (never the root)."""
    path = Path(source)
    name = path.stem if path.suffix else path.name
    folders = path.parent.parts[1:] if path.is_absolute() else path.parent.parts
    return '-'.join([*folders[len(folders) - min(parents, len(folders)) :], name])


def file_stems(label: str) -> set:
    """The file names (case-folded, no suffix) a model's label writes: its CSV and its --by-blur CSV."""
    return {label.casefold(), f'{label}_by_blur'.casefold()}


def row_labels(sources: list) -> list:
    """One label per model, so that no model's CSV or outputs overwrite another's: where different sources would
    get the same label (``A/models/net_g_14000.pth`` and ``B/models/net_g_14000.pth``), folder names are added
    (``A-models-net_g_14000``); whatever still clashes (a source given twice) is numbered (``net``, ``net-2``)."""
    labels = [row_label(source) for source in sources]
    for parents in range(1, 16):
        sources_per_label = {}
        for source, label in zip(sources, labels, strict=True):
            sources_per_label.setdefault(label.casefold(), set()).add(source)
        longer = [
            row_label(source, parents) if len(sources_per_label[label.casefold()]) > 1 else label
            for source, label in zip(sources, labels, strict=True)
        ]
        if longer == labels:
            break
        labels = longer
    taken, unique = set(), []
    for label in labels:
        candidate, number = label, 1
        while file_stems(candidate) & taken:
            number += 1
            candidate = f'{label}-{number}'
        taken |= file_stems(candidate)
        unique.append(candidate)
    return unique


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.weights or args.reference or args.opt):
        parser.error(
            'give --weights (and/or -opt) to run a network, or --reference DIR to score outputs made elsewhere'
        )
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    samples = scenes_with_targets(args.input, args.split)
    networks = args.weights or ([None] if args.opt else [])  # None: the option file's pretrain_network_g
    labels = row_labels([source or args.opt for source in networks] + args.reference)
    runs = [
        lambda b, s=source, n=label: network_scores(args, s, n, samples, b)
        for source, label in zip(networks, labels[: len(networks)], strict=True)
    ]
    runs += [lambda b, f=folder: score_outputs(samples, f, b) for folder in args.reference]
    scene_blocks = {}  # every scene's blocks measured once, shared by the models' breakdowns
    rows = []
    for label, run in zip(labels, runs, strict=True):
        breakdown = BlurBreakdown(scene_blocks) if args.by_blur else None
        scores = run(breakdown)
        if args.csv_dir:
            write_scores_csv(Path(args.csv_dir) / f'{label}.csv', scores)
        rows.append((label, mean_score(scores)))
        print(summary_line(label, rows[-1][1], len(scores)), flush=True)
        if breakdown is not None:
            print('\n'.join(breakdown_lines(breakdown.scores())), flush=True)
            if args.csv_dir:
                write_bytes_atomically(Path(args.csv_dir) / f'{label}_by_blur.csv', breakdown_csv(breakdown.scores()))
    if args.table:
        write_bytes_atomically(args.table, markdown_table(rows).encode())
    return 0


if __name__ == '__main__':
    sys.exit(main())
