"""Leaderboard in the DPDD table format: every model's test set through the plugin's own test pipeline.

Each test option file runs in its own process (``python -m dmtnet_arch.tools.leaderboard``), which parses it with
BasicSR's ``parse_options``, builds its datasets and model with BasicSR's builders and calls
``model.validation`` as ``basicsr/test.py`` does; the per-category means are the summary CSV that the validation
writes. The process also times ``model.test`` per image, reads its own peak memory, and counts parameters and MACs
at 1680 x 1120. One process per model keeps the memory figures apart, and a model that fails does not lose the
others. See docs/leaderboard.md.
"""

import csv
import datetime
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from dmtnet_arch.tools.complexity import count_macs, count_parameters
from dmtnet_arch.utils.device_util import PeakMemory, describe_machine, synchronize
from dmtnet_arch.utils.file_util import write_bytes_atomically

PACKAGE_PARENT = Path(__file__).resolve().parents[1]
COMPLEXITY_SIZE = (1120, 1680)  # height, width of DPDD images
GROUPS = ('indoor', 'outdoor', 'combined')
METRICS = ('PSNR', 'SSIM', 'MAE')
METRIC_TYPES = {
    'calculate_dp_psnr': 'PSNR',
    'calculate_dp_ssim': 'SSIM',
    'calculate_dp_mae': 'MAE',
    'calculate_dp_lpips': 'LPIPS',
}

# The DMTNet paper's Table 1 (Canon DP test set): indoor, outdoor, combined (PSNR, SSIM, MAE), params (M), GMACs.
# IFAN's numbers are its own 8-bit ones (reference.md, section 3); the paper does not state the others' protocol.
PUBLISHED_TABLE1 = [
    ('EBDB', (25.77, 0.772, 0.040), (21.25, 0.599, 0.058), (23.45, 0.683, 0.049), None, None),
    ('DMENet', (25.70, 0.789, 0.036), (21.51, 0.655, 0.061), (23.55, 0.720, 0.049), 26.71, None),
    ('JNB', (26.73, 0.828, 0.031), (21.10, 0.608, 0.064), (23.84, 0.715, 0.048), None, None),
    ('DPDNet', (27.48, 0.849, 0.029), (22.90, 0.726, 0.052), (25.13, 0.786, 0.041), 34.52, 1883.74),
    ('DPDNet+', (27.65, 0.852, 0.028), (22.72, 0.719, 0.054), (25.12, 0.784, 0.042), 34.52, 1883.74),
    ('RDPD+', (28.10, 0.843, 0.027), (22.82, 0.704, 0.053), (25.39, 0.772, 0.040), 27.51, 612.05),
    ('IFAN', (28.66, 0.868, 0.025), (23.46, 0.743, 0.049), (25.99, 0.804, 0.037), 14.48, 855.31),
    ('KPAC', (27.36, 0.849, 0.030), (22.47, 0.707, 0.055), (24.85, 0.776, 0.043), 1.58, 348.63),
    ('Uformer-B', (28.23, 0.860, 0.026), (23.10, 0.728, 0.051), (25.65, 0.795, 0.039), 50.88, 3066.94),
    ('Restormer', (29.48, 0.895, 0.023), (23.97, 0.773, 0.047), (26.66, 0.833, 0.035), 26.13, 4059.08),
    ('MRNet', (29.53, 0.896, 0.022), (24.31, 0.789, 0.045), (26.85, 0.841, 0.034), 48.25, 2597.38),
    ('DMTNet-T', (27.73, 0.850, 0.027), (23.38, 0.724, 0.051), (25.50, 0.786, 0.039), 1.23, 147.37),
    ('DMTNet-S', (28.77, 0.880, 0.025), (23.90, 0.765, 0.046), (26.27, 0.821, 0.036), 12.57, 688.35),
    ('DMTNet-B', (29.21, 0.891, 0.023), (24.18, 0.780, 0.046), (26.63, 0.834, 0.035), 24.46, 1294.41),
    ('DMTNet-L', (29.50, 0.892, 0.023), (24.31, 0.783, 0.045), (26.83, 0.836, 0.034), 36.35, 1900.46),
    ('DMTNet-H', (29.50, 0.895, 0.022), (24.45, 0.791, 0.045), (26.91, 0.841, 0.034), 48.24, 2506.51),
]


# ---------------------------------------------------------------------------------------------------------------
# one model, in its own process


def options_with_weights(option_file: str, run_root: str) -> tuple[str, bool, str]:
    """(option file to test, trained, weights description). Without trained weights (no
    ``path: pretrain_network_g``, or no such file) a copy of the option file under ``run_root/options`` asks for
    the initial weights explicitly (``allow_random_weights``), so the model still gets its other columns."""
    from dmtnet_arch.tools.short_training import write_options
    from dmtnet_arch.utils.checkpoint import describe_weights, resolve_weights
    from dmtnet_arch.utils.options import read_option_file

    opt = read_option_file(option_file)
    path = opt.get('path') or {}
    weights = path.get('pretrain_network_g')
    if weights and Path(resolve_weights(weights)).is_file():
        return option_file, True, describe_weights(weights)
    reason = f'untrained (no file {weights})' if weights else 'untrained (no path: pretrain_network_g)'
    opt['path'] = {**path, 'pretrain_network_g': None, 'allow_random_weights': True}
    return str(write_options(Path(run_root) / 'options' / Path(option_file).name, opt)), False, reason


class TestTimer:
    """Wraps ``model.test`` to time each call (device synchronised) and record the network's input shapes."""

    def __init__(self, model):
        self.model, self.test, self.seconds, self.input_shapes = model, model.test, [], []
        model.get_bare_model(model.net_g).register_forward_pre_hook(self.record_input)
        model.test = self

    def record_input(self, _module, args):
        self.input_shapes.append(tuple(args[0].shape))

    def __call__(self):
        synchronize(self.model.device)
        start = time.perf_counter()
        self.test()
        synchronize(self.model.device)
        self.seconds.append(time.perf_counter() - start)

    def latency_ms(self) -> float | None:
        """Median per image, the first (warm-up) call left out when there are others."""
        timed = self.seconds[1:] or self.seconds
        return statistics.median(timed) * 1e3 if timed else None


def test_device() -> str:
    """Where ``basicsr/test.py``'s model runs: the GPU when there is one."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def peak_memory_mib() -> tuple[float, str]:
    """The test process's peak so far (never reset: it covers every test set) and what kind of memory it is."""
    probe = PeakMemory(test_device(), reset=False)
    return probe.peak_gib() * 1024, probe.kind


def read_summary(results_root: Path, dataset: str, metric_opts: dict) -> tuple[dict, dict, dict]:
    """Per-group means, image counts and protocols from the validation's metrics_<dataset>_summary.csv."""
    labels = {name: METRIC_TYPES.get(opt['type'], name) for name, opt in metric_opts.items()}
    protocols = {labels[name]: opt.get('protocol', '16bit') for name, opt in metric_opts.items()}
    means, counts = {}, {}
    with open(results_root / f'metrics_{dataset}_summary.csv', newline='') as f:
        for row in csv.DictReader(f):
            counts[row['group']] = int(row['images'])
            means[row['group']] = {
                label: float(value) for column, value in row.items()
                for name, label in labels.items() if column.split(' (')[0] == name
            }  # fmt: skip
    return means, counts, protocols


def complexity(net, channels: int | None) -> dict:
    """Parameters and MACs at 1680 x 1120 for an input of the channels the network was given in the test."""
    result = {'params': count_parameters(net), 'macs': None, 'macs_note': ''}
    if channels is None:
        result['macs_note'] = 'no test image reached the network'
        return result
    try:
        result['macs'] = count_macs(net, (1, channels, *COMPLEXITY_SIZE))
    except Exception as error:  # a network the meta device cannot run still gets its other columns
        result['macs_note'] = f'not counted: {type(error).__name__}: {error}'
    return result


def speed_at_size(model, timer: TestTimer, channels: int, size: tuple[int, int], bf16: bool, repeats: int = 3):
    """Latency and peak memory of ``model.test()`` on a random (1, channels, height, width) input: the same test
    path as the images (tiling, padding), bf16 autocast through the model's ``amp`` when asked."""
    if bf16:
        model.amp = 'bf16'
    timer.seconds.clear()
    with PeakMemory(test_device()) as memory:
        for _ in range(repeats + 1):  # the first is the warm-up
            model.lq = torch.rand(1, channels, *size, device=model.device)
            model.test()
            del model.output
    return {'speed_latency_ms': timer.latency_ms(), 'speed_peak_memory_mib': memory.peak_gib() * 1024}


def evaluate(option_file: str, run_root: str, with_lpips: bool, speed_size=None, bf16=False) -> list[dict]:
    """Test the model of ``option_file`` on each of its test sets, as basicsr/test.py does, measuring as it goes;
    with ``speed_size`` (height, width), also time ``model.test()`` at that size."""
    import logging

    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger, make_exp_dirs
    from basicsr.utils.options import parse_options

    tested_file, trained, weights = options_with_weights(option_file, run_root)
    sys.argv = [sys.argv[0], '-opt', tested_file]
    opt, _ = parse_options(run_root, is_train=False)
    if not opt.get('val', {}).get('metrics'):
        raise ValueError(f'{option_file}: val: metrics is empty; the leaderboard needs the PSNR, SSIM and MAE metrics')
    opt['val']['save_img'] = False
    if with_lpips:
        opt['val']['metrics']['lpips'] = {'type': 'calculate_dp_lpips', 'better': 'lower'}
    make_exp_dirs(opt)
    get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=str(Path(opt['path']['log']) / 'test.log'))
    loaders = []
    for _, dataset_opt in sorted(opt['datasets'].items()):
        dataset = build_dataset(dataset_opt)
        loaders.append(build_dataloader(dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=False, sampler=None,
                                        seed=opt['manual_seed']))  # fmt: skip
    model = build_model(opt)
    timer = TestTimer(model)
    if test_device() == 'cuda':
        PeakMemory('cuda').start()  # the GPU's peak from here; a CPU's is the whole test process's
    results = []
    for loader in loaders:
        dataset = loader.dataset.opt['name']
        timer.seconds.clear()
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=False)
        means, counts, protocols = read_summary(Path(opt['path']['results_root']), dataset, opt['val']['metrics'])
        results.append({'dataset': dataset, 'groups': means, 'images': counts, 'protocols': protocols,
                        'latency_ms': timer.latency_ms()})  # fmt: skip
    memory, memory_kind = peak_memory_mib()
    channels = timer.input_shapes[0][1] if timer.input_shapes else None
    shared = {
        'option_file': option_file,
        'name': opt['name'],
        'arch': opt['network_g']['type'],
        'label': '-'.join(str(v) for v in (opt['network_g']['type'], opt['network_g'].get('variant')) if v),
        'trained': trained,
        'weights': weights,
        'image_sizes': sorted({f'{s[-1]}x{s[-2]}' for s in timer.input_shapes}),
        'peak_memory_mib': memory,
        'memory_kind': memory_kind,
        **complexity(model.get_bare_model(model.net_g), channels),
    }
    if speed_size and channels:
        shared.update(speed_at_size(model, timer, channels, speed_size, bf16))
    return [{**shared, **result} for result in results]


def parse_size(text: str) -> tuple[int, int]:
    """'1120x1680' (height x width) -> (1120, 1680)."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ValueError(f'--speed-size takes HEIGHTxWIDTH, e.g. 1120x1680; got {text!r}') from None
    return height, width


def main():
    """Child-process entry: ``python -m dmtnet_arch.tools.leaderboard OPTION RUN_ROOT JSON [--lpips] [--speed-size HxW]
    [--bf16]``."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument('option_file')
    parser.add_argument('run_root')
    parser.add_argument('json_out')
    parser.add_argument('--lpips', action='store_true')
    parser.add_argument('--speed-size', type=parse_size)
    parser.add_argument('--bf16', action='store_true')
    args = parser.parse_args()
    results = evaluate(args.option_file, args.run_root, args.lpips, args.speed_size, args.bf16)
    write_bytes_atomically(args.json_out, json.dumps(results, indent=1).encode())


# ---------------------------------------------------------------------------------------------------------------
# all models: the tables and the figure


def run_model(option_file: Path, run_root: Path, flags: list[str]) -> list[dict]:
    """Evaluate one option file in a child process (``flags`` for :func:`main`), its results under ``run_root``
    (one folder per row, so two option files with the same ``name`` keep their own); a failure becomes a row that
    says why."""
    json_out = run_root / 'rows.json'
    json_out.unlink(missing_ok=True)
    command = [sys.executable, '-m', 'dmtnet_arch.tools.leaderboard', str(option_file), str(run_root), str(json_out)]
    env = {
        **os.environ,
        'PYTHONPATH': os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get('PYTHONPATH')])),
    }
    print(f'testing {option_file}', flush=True)
    done = subprocess.run(command + flags, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not json_out.is_file():
        print(done.stderr[-3000:], file=sys.stderr)
        return [{'option_file': str(option_file), 'name': option_file.stem, 'error': failure_reason(done.stderr)}]
    return json.loads(json_out.read_text())


def failure_reason(stderr: str) -> str:
    """The exception line that ended a child (the last ``SomeError: ...`` line), not a progress bar's last redraw
    (tqdm ends its lines with carriage returns)."""
    lines = [line.strip() for line in re.split(r'[\r\n]+', stderr) if line.strip()]
    raised = [line for line in lines if re.match(r'^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b', line)]
    return (raised or lines or ['failed, with no message'])[-1]


def run_folders(option_files: list[Path], out_dir: Path) -> list[Path]:
    """``out_dir/runs/<option file stem>`` per option file, numbered when two stems are the same."""
    stems = [path.stem for path in option_files]
    return [
        out_dir / 'runs' / (stem if stems.count(stem) == 1 else f'{index + 1:02d}_{stem}')
        for index, stem in enumerate(stems)
    ]


def label_rows(rows: list[dict]) -> list[dict]:
    """Each measured row's ``model_label``: the network and its option file, by stem, or by path where two option
    files share a stem (two models must never read alike; the rows of one file's test sets differ in source)."""
    files_by_stem = {}
    for row in rows:
        files_by_stem.setdefault(Path(row['option_file']).stem, set()).add(row['option_file'])
    for row in rows:
        stem = Path(row['option_file']).stem
        source = stem if len(files_by_stem[stem]) == 1 else row['option_file']
        row['model_label'] = f'{row["label"]} ({source})' if 'label' in row else source
    return rows


def run_leaderboard(
    option_files, out_dir, published: bool = False, command: str = '', speed_size=None, bf16: bool = False
) -> list[dict]:
    """Test every option file, then write ``leaderboard.md``, ``leaderboard.csv`` and ``psnr_vs_params.png``.

    ``speed_size`` (height, width) adds latency and peak-memory columns of ``model.test()`` at that size (e.g.
    DPDD's 1120 x 1680), under bf16 autocast with ``bf16``.
    """
    from dmtnet_arch.metrics.lpips_metric import lpips_availability

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with_lpips, lpips_reason = lpips_availability()
    flags = ['--lpips'] * with_lpips + ['--bf16'] * bf16
    if speed_size:
        flags += ['--speed-size', f'{speed_size[0]}x{speed_size[1]}']
    option_files = [Path(option_file) for option_file in option_files]
    rows = [
        row
        for option_file, run_root in zip(option_files, run_folders(option_files, out_dir), strict=True)
        for row in run_model(option_file, run_root, flags)
    ]
    rows = label_rows(rows)
    columns = COLUMNS + (speed_columns(speed_size, bf16) if speed_size else [])
    table = measured_rows(rows, columns[len(COLUMNS) :]) + (published_rows() if published else [])
    header = report_header(rows, lpips_reason, with_lpips, command)
    if speed_size:
        header.append(
            f'- {columns[-2]} and {columns[-1]}: `model.test()` on one random input of {speed_size[1]} x '
            f'{speed_size[0]} pixels, median of 3 calls after a warm-up'
            + (', under bf16 autocast' if bf16 else '')
            + '; memory as above (on a CPU the process peak, which includes the test images).'
        )
    write_bytes_atomically(out_dir / 'leaderboard.md', markdown(header, table, columns).encode())
    write_bytes_atomically(out_dir / 'leaderboard.csv', csv_text(table, columns).encode())
    plot(rows, published, out_dir / 'psnr_vs_params.png')
    return table


COLUMNS = (
    ['model', 'source', 'weights', 'protocol']
    + [f'{group} {metric}' for group in GROUPS for metric in METRICS]
    + ['combined LPIPS', 'params (M)', 'GMACs @1680x1120', 'latency (ms/image)', 'test image size', 'peak memory (MiB)']
)


def speed_columns(size: tuple[int, int], bf16: bool) -> list[str]:
    at = f'@{size[1]}x{size[0]}' + (' bf16' if bf16 else '')
    return [f'latency {at} (ms)', f'peak memory {at} (MiB)']


def number(value, digits: int) -> str:
    return '' if value is None else f'{value:.{digits}f}'


DIGITS = {'PSNR': 2, 'SSIM': 4, 'MAE': 4, 'LPIPS': 4}


def measured_rows(rows: list[dict], speed_names: list[str]) -> list[dict]:
    """Table cells of the measured rows; quality cells of untrained weights say so."""
    table = []
    for row in rows:
        cells = {'model': row['model_label'], 'source': f'measured: {row["option_file"]}'}
        if 'error' in row:
            table.append({**cells, 'weights': f'failed: {row["error"]}'})
            continue
        suffix = '' if row['trained'] else ' (untrained)'
        cells.update(
            {
                'model': row['model_label'],
                'source': f'measured on {row["dataset"]}',
                'weights': row['weights'],
                'protocol': ', '.join(sorted(set(row['protocols'].values()))),
                'params (M)': number(row['params'] / 1e6, 2),
                'GMACs @1680x1120': number(row['macs'] / 1e9, 1) if row['macs'] else row['macs_note'],
                'latency (ms/image)': number(row['latency_ms'], 1),
                'test image size': ', '.join(row['image_sizes']),
                'peak memory (MiB)': number(row['peak_memory_mib'], 0),
            }
        )
        if speed_names:
            cells[speed_names[0]] = number(row.get('speed_latency_ms'), 1)
            cells[speed_names[1]] = number(row.get('speed_peak_memory_mib'), 0)
        for group in GROUPS:
            values = row['groups'].get(group)
            for metric in METRICS + ('LPIPS',):
                if values is None or metric not in values:
                    text = 'n/a (no categories)' if values is None else ''
                else:
                    text = number(values[metric], DIGITS[metric]) + suffix
                if metric != 'LPIPS':
                    cells[f'{group} {metric}'] = text
                elif group == 'combined':
                    cells['combined LPIPS'] = text or 'unavailable'
        table.append(cells)
    return table


def published_rows() -> list[dict]:
    table = []
    for name, *groups, params, gmacs in PUBLISHED_TABLE1:
        cells = {
            'model': name,
            'source': 'published (DMTNet paper, Table 1)',
            'weights': 'published',
            'protocol': '8bit (IFAN own)' if name == 'IFAN' else 'as published',
            'params (M)': number(params, 2),
            'GMACs @1680x1120': number(gmacs, 2),
        }
        for group, values in zip(GROUPS, groups, strict=True):
            for metric, value in zip(METRICS, values, strict=True):
                cells[f'{group} {metric}'] = number(value, DIGITS[metric] - (1 if metric != 'PSNR' else 0))
        table.append(cells)
    return table


def report_header(rows: list[dict], lpips_reason: str, with_lpips: bool, command: str) -> list[str]:
    now = datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')
    memory_kinds = sorted({row['memory_kind'] for row in rows if 'memory_kind' in row})
    return [
        '# Leaderboard',
        '',
        f'Made {now}'
        + (f' by `{command}`' if command else '')
        + f'. Machine: {describe_machine(test_device(), with_date=False)}.',
        '',
        '- Metric protocol: PSNR = 10 log10(1 / MSE), SSIM (scikit-image, data_range 1, RGB), MAE, on float images '
        'in [0, 1] (output clamped), full image, no border crop; `16bit` quantises output and target to 16-bit '
        "levels, `8bit` is IFAN's protocol (16-bit PNGs read as 8 bits). Means over the images of each group "
        '(indoor / outdoor from the test set\'s category_file; "n/a" without one). The protocol column says which.',
        "- Measured rows: the model's test option file through the plugin's test pipeline (BasicSR's builders, "
        '`DualPixelModel.validation`). "(untrained)" marks quality numbers of a network without trained weights '
        "(initial weights from the option file's manual_seed).",
        '- Params: trainable parameters. GMACs: `torch.utils.flop_counter` FLOPs / 2 for one input of the '
        "network's channels at 1680 x 1120 on the meta device (attention matmuls included).",
        f'- Latency: median wall time of `model.test()` per test image (first image left out as warm-up) at the '
        f'test image size, on the machine above. Peak memory: {", ".join(memory_kinds) or "n/a"}.',
        f'- LPIPS: {lpips_reason if with_lpips else "unavailable: " + lpips_reason}.',
        "- Published rows: the DMTNet paper's Table 1 (Canon DP test set, their own machines); they are not "
        'comparable with measured rows on another test set.',
    ]


def markdown(header: list[str], table: list[dict], columns: list[str]) -> str:
    lines = header + ['', '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(str(row.get(c, '')).replace('|', '/') for c in columns) + ' |' for row in table]
    return '\n'.join(lines) + '\n'


def csv_text(table: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows({c: row.get(c, '') for c in columns} for row in table)
    return buffer.getvalue()


def plot(rows: list[dict], published: bool, path: Path):
    from dmtnet_arch.utils.plot_util import ComplexityPoint, plot_psnr_vs_complexity

    points = [
        ComplexityPoint(row['model_label'], row['params'] / 1e6, row['macs'] / 1e9 if row['macs'] else None,
                        row['groups']['combined']['PSNR'], published=False, family=row['arch'])
        for row in rows if 'error' not in row
    ]  # fmt: skip
    if published:
        points += [ComplexityPoint(name, params, gmacs, groups[-1][0], published=True, family=name.split('-')[0])
                   for name, *groups, params, gmacs in PUBLISHED_TABLE1 if params is not None]  # fmt: skip
    datasets = sorted({row['dataset'] for row in rows if 'dataset' in row})
    plot_psnr_vs_complexity(points, path, measured_on=', '.join(datasets) or 'no measured rows')


if __name__ == '__main__':
    from dmtnet_arch import compat

    compat.run_then_leave_process_group(main)
