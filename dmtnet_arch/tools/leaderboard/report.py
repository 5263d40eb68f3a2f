"""All models of the leaderboard: one child process per option file, then the tables and the figure.

One process per model (:mod:`dmtnet_arch.tools.leaderboard.runner`) keeps the memory figures apart, and a model
that fails does not lose the others: it becomes a row that says why.
"""

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from dmtnet_arch.metrics.lpips_metric import lpips_availability
from dmtnet_arch.tools.leaderboard.runner import test_device
from dmtnet_arch.tools.published import PUBLISHED_TABLE1
from dmtnet_arch.utils.device_util import describe_machine
from dmtnet_arch.utils.file_util import csv_bytes, write_bytes_atomically
from dmtnet_arch.utils.plot_util import ComplexityPoint, plot_psnr_vs_complexity

PACKAGE_PARENT = Path(__file__).resolve().parents[3]  # the checkout (or site-packages) holding dmtnet_arch
GROUPS = ('indoor', 'outdoor', 'combined')
METRICS = ('PSNR', 'SSIM', 'MAE')


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
    """Test every option file, each in its own process, then write ``leaderboard.md``, ``leaderboard.csv`` and
    ``psnr_vs_params.png`` under ``out_dir``.

    Args:
        option_files (list): Test option files, one model each (as for ``dmtnet_arch/test.py``).
        out_dir: Folder of the three files, and of each model's run under ``runs/``.
        published (bool): Add the rows of the DMTNet paper's Table 1. Default: False.
        command (str): The command that made the leaderboard, quoted in its header. Default: ''.
        speed_size (tuple[int, int] | None): (height, width): add latency and peak-memory columns of
            ``model.test()`` at that size (e.g. DPDD's 1120 x 1680). Default: None.
        bf16 (bool): Time that size under bf16 autocast. Default: False.

    Returns:
        list[dict]: The table's rows, by column name.
    """
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
    write_bytes_atomically(out_dir / 'leaderboard.csv', csv_table(table, columns))
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


def format_number(value, digits: int) -> str:
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
                'params (M)': format_number(row['params'] / 1e6, 2),
                'GMACs @1680x1120': format_number(row['macs'] / 1e9, 1) if row['macs'] else row['macs_note'],
                'latency (ms/image)': format_number(row['latency_ms'], 1),
                'test image size': ', '.join(row['image_sizes']),
                'peak memory (MiB)': format_number(row['peak_memory_mib'], 0),
            }
        )
        if speed_names:
            cells[speed_names[0]] = format_number(row.get('speed_latency_ms'), 1)
            cells[speed_names[1]] = format_number(row.get('speed_peak_memory_mib'), 0)
        for group in GROUPS:
            values = row['groups'].get(group)
            for metric in METRICS + ('LPIPS',):
                if values is None or metric not in values:
                    text = 'n/a (no categories)' if values is None else ''
                else:
                    text = format_number(values[metric], DIGITS[metric]) + suffix
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
            'params (M)': format_number(params, 2),
            'GMACs @1680x1120': format_number(gmacs, 2),
        }
        for group, values in zip(GROUPS, groups, strict=True):
            for metric, value in zip(METRICS, values, strict=True):
                cells[f'{group} {metric}'] = format_number(value, DIGITS[metric] - (1 if metric != 'PSNR' else 0))
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


def csv_table(table: list[dict], columns: list[str]) -> bytes:
    return csv_bytes(columns, [[row.get(c, '') for c in columns] for row in table])


def plot(rows: list[dict], published: bool, path: Path):
    points = [
        ComplexityPoint(
            row['model_label'],
            row['params'] / 1e6,
            row['macs'] / 1e9 if row['macs'] else None,
            row['groups']['combined']['PSNR'],
            published=False,
            family=row['arch'],
        )
        for row in rows
        if 'error' not in row
    ]
    if published:
        points += [
            ComplexityPoint(name, params, gmacs, groups[-1][0], published=True, family=name.split('-')[0])
            for name, *groups, params, gmacs in PUBLISHED_TABLE1
            if params is not None
        ]
    datasets = sorted({row['dataset'] for row in rows if 'dataset' in row})
    plot_psnr_vs_complexity(points, path, measured_on=', '.join(datasets) or 'no measured rows')
