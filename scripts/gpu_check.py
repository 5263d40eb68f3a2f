"""The GPU check behind scripts/gpu_check.sh: one table of what a CUDA GPU does with this plugin (docs/performance.md).

    bash scripts/gpu_check.sh                     # on a machine with one CUDA GPU, within about 8 minutes
    GPU_CHECK_SMOKE=1 bash scripts/gpu_check.sh   # the same steps on the CPU at tiny sizes: does the script run?

Rows: DMTNet-T, DMTNet-B and Restormer forward passes at 1680 x 1120 in fp32, bf16 and bf16 + torch.compile
(median latency, peak GPU memory allocated, first pass with compilation); DMTNet-B training iterations per second
at 512 x 512, batch 8, bf16 eager and compiled; and a 200-iteration DMTNet-T training through dmtnet_arch/train.py
in bf16 with validation and EMA on synthetic data made here (exit status and final validation PSNR). A step that
fails is a row saying why, and the others still run; steps that would start after --budget seconds are skipped.
The exit status is 0 when every step ran and the training succeeded, else 1; 2 when no GPU is visible.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

NO_GPU = (
    'gpu_check: no CUDA GPU visible to torch (torch.cuda.is_available() is False). This check needs one NVIDIA GPU; '
    'for a CPU dry run of its steps at tiny sizes, set GPU_CHECK_SMOKE=1.'
)


# The dry run's networks: the same types and labels, a fraction of their depth.
SMOKE_NETWORKS = {
    'DMTNet': {'num_transformer_blocks': 1, 'upsampler_channels': 16, 'num_rbm': 1, 'num_rm': 1},
    'Restormer': {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1},
}


def settings(smoke: bool) -> dict:
    """Sizes and step counts: the real check, or the CPU dry run (tiny sizes and networks, one thread, and
    TORCHDYNAMO_DISABLE=1 so that torch.compile's wrappers run without compiling: the dry run checks this script's
    steps; tests/test_precision.py checks compilation)."""
    if smoke:
        return {
            'device': 'cpu',
            'height': 64,
            'width': 96,
            'train_size': 32,
            'train_batch': 2,
            'train_iters': 2,
            'compile': True,
            'repeats': 1,
            'run_iters': 4,
            'val_freq': 2,
            'samples': (4, 2),
            'patch': 32,
            'run_batch': 2,
            'workers': 0,
            'networks': SMOKE_NETWORKS,
        }
    return {
        'device': 'cuda',
        'height': 1120,
        'width': 1680,
        'train_size': 512,
        'train_batch': 8,
        'train_iters': 20,
        'compile': True,
        'repeats': 5,
        'run_iters': 200,
        'val_freq': 100,
        'samples': (64, 8),
        'patch': 128,
        'run_batch': 8,
        'workers': 2,
        'networks': {},
    }


def network_options(network: dict, config: dict) -> dict:
    return {**network, **config['networks'].get(network['type'], {})}


FORWARD_PATHS = {'fp32': {}, 'bf16': {'amp': 'bf16'}, 'bf16 + compile': {'amp': 'bf16', 'compile': True}}
NETWORKS = ('DMTNet-T', 'DMTNet-B', 'Restormer')


class Table:
    """Rows printed as they come (a run cut short still shows what it measured), and again together at the end."""

    HEADER = '| step | setting | result | peak memory (GiB) | first pass / step (s) |\n|---|---|---|---|---|'

    def __init__(self, budget: float):
        self.rows, self.start, self.budget, self.failed = [], time.monotonic(), budget, False

    def over_budget(self) -> bool:
        return time.monotonic() - self.start > self.budget

    def add(self, *cells, failed: bool = False):
        self.failed |= failed
        row = '| ' + ' | '.join(str(cell) for cell in cells) + ' |'
        self.rows.append(row)
        print(row, flush=True)

    def run(self, step: str, setting: str, function):
        """Run one measurement; a failure or the budget becomes a row."""
        if self.over_budget():
            return self.add(step, setting, f'skipped: past the {self.budget:.0f} s budget', '', '', failed=True)
        try:
            function()
        except Exception as error:  # one failing step must not hide the others' figures
            text = str(error).strip().splitlines()
            self.add(
                step, setting, f'failed: {type(error).__name__}: {text[-1] if text else ""}'[:300], '', '', failed=True
            )


def forward_rows(table: Table, config: dict):
    import torch

    from dmtnet_arch.tools.benchmark import Case, measure, networks

    found = {label: (network, channels) for label, network, channels in networks('TB', peers=True)}
    for label in NETWORKS:
        if label not in found:
            table.add(f'{label} forward', '', 'not registered', '', '', failed=True)
            continue
        network, channels = network_options(found[label][0], config), found[label][1]
        for path, extra in FORWARD_PATHS.items():
            if extra.get('compile'):
                extra = {**extra, 'compile': config['compile']}
            case = Case(
                network,
                label,
                config['height'],
                config['width'],
                channels,
                device=config['device'],
                warmup=1,
                repeats=config['repeats'],
                **extra,
            )

            def one(case=case, path=path):
                result = measure(case)
                table.add(
                    f'{case.label} forward',
                    f'{case.width}x{case.height}, {path}',
                    f'{result["seconds"] * 1e3:.1f} ms',
                    f'{result["peak_gib"]:.2f}',
                    f'{result["first_seconds"]:.1f}',
                )

            table.run(f'{label} forward', path, one)
            if config['device'] == 'cuda':
                torch.cuda.empty_cache()


def training_rows(table: Table, config: dict):
    from dmtnet_arch.tools.benchmark import TrainCase, measure_training

    size, batch = config['train_size'], config['train_batch']
    for mode, compile in (('bf16 eager', False), ('bf16 + compile', config['compile'])):
        network = network_options({'type': 'DMTNet', 'variant': 'B'}, config)
        case = TrainCase(network, 'DMTNet-B', size, batch, config['device'], 'bf16', compile, config['train_iters'])

        def one(case=case, mode=mode):
            result = measure_training(case)
            table.add(
                'DMTNet-B training',
                f'{size}x{size}, batch {batch}, {mode}',
                f'{result["iterations_per_second"]:.2f} it/s',
                '',
                f'{result["first_seconds"]:.1f}',
            )

        table.run('DMTNet-B training', mode, one)


def training_options(data: Path, name: str, config: dict) -> dict:
    """The shipped synthetic option file with this check's data, length, validation, EMA and bf16."""
    import yaml
    from basicsr.utils.options import ordered_yaml

    opt = yaml.load((ROOT / 'options' / 'train_DMTNet_synthetic.yml').read_text(), Loader=ordered_yaml()[0])
    opt['name'] = name
    opt['num_gpu'] = 1 if config['device'] == 'cuda' else 0
    for split in ('train', 'val'):
        for key in [k for k in opt['datasets'][split] if k.startswith('dataroot_')]:
            view = {
                'dataroot_lqL': 'inputL',
                'dataroot_lqR': 'inputR',
                'dataroot_lqC': 'inputC',
                'dataroot_gt': 'target',
            }
            opt['datasets'][split][key] = str(data / split / view[key])
    opt['datasets']['train'].update(
        gt_size=config['patch'], batch_size_per_gpu=config['run_batch'], num_worker_per_gpu=config['workers']
    )
    iters = config['run_iters']
    opt['network_g'].update(config['networks'].get('DMTNet', {}))
    opt['train'].update(total_iter=iters, ema_decay=0.999, amp='bf16')
    opt['train']['scheduler']['periods'] = [iters]
    opt['val']['val_freq'] = config['val_freq']
    opt['logger'].update(print_freq=max(1, iters // 4), save_checkpoint_freq=iters, use_tb_logger=False)
    return opt


def final_psnr(experiment: Path, iters: int) -> str:
    summary = experiment / 'metrics' / f'metrics_synthetic_val_{iters}_summary.csv'
    with open(summary, newline='') as f:
        row = next(r for r in csv.DictReader(f) if r['group'] == 'combined')
    return next(f'{float(v):.2f} dB' for k, v in row.items() if k.startswith('psnr'))


def training_run_row(table: Table, config: dict, folder: Path, keep: bool):
    import yaml
    from basicsr.utils.options import ordered_yaml

    name = f'gpu_check_{time.strftime("%Y%m%d_%H%M%S")}'
    experiment = ROOT / 'experiments' / name
    iters = config['run_iters']

    def one():
        train_count, val_count = config['samples']
        for split, count, seed in (('train', train_count, 0), ('val', val_count, 1)):
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / 'scripts' / 'make_synthetic_dp.py'),
                    '--count',
                    str(count),
                    '--size',
                    '128',
                    '--seed',
                    str(seed),
                    '--out',
                    str(folder / split),
                    '--quiet',
                ],
                check=True,
                capture_output=True,
            )
        options = folder / f'{name}.yml'
        options.write_text(yaml.dump(training_options(folder, name, config), Dumper=ordered_yaml()[1]))
        start = time.monotonic()
        remaining = max(30.0, table.budget - (time.monotonic() - table.start) + 60)
        done = subprocess.run(
            [sys.executable, str(ROOT / 'dmtnet_arch' / 'train.py'), '-opt', str(options)],
            capture_output=True,
            text=True,
            timeout=remaining,
        )
        seconds = time.monotonic() - start
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ['(no output)'])[-1]
            table.add(
                'DMTNet-T training run',
                f'{iters} iterations',
                f'exit status {done.returncode}: {last}'[:300],
                '',
                f'{seconds:.0f} s',
                failed=True,
            )
            return
        psnr = final_psnr(experiment, iters)
        table.add(
            'DMTNet-T training run',
            f'{iters} it, bf16, val + EMA, dmtnet_arch/train.py',
            f'exit status 0, final PSNR {psnr}',
            '',
            f'{seconds:.0f} s in all',
        )

    try:
        table.run('DMTNet-T training run', f'{iters} iterations', one)
    finally:
        if not keep:
            shutil.rmtree(experiment, ignore_errors=True)
    if keep:
        print(f'training run kept in {experiment}', flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--smoke', action='store_true', help='CPU dry run at tiny sizes (what GPU_CHECK_SMOKE=1 sets)')
    parser.add_argument('--budget', type=float, default=420, help='seconds after which steps are skipped (420)')
    parser.add_argument('--keep', action='store_true', help="keep the training run's experiments/ folder")
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ['TORCHDYNAMO_DISABLE'] = '1'  # before torch is imported (settings() says why)
        os.environ['OMP_NUM_THREADS'] = '1'  # here and in the training run: a busy CI machine's threads would wait
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    import dmtnet_arch  # noqa: F401  (registers the networks)
    from dmtnet_arch.utils.device_util import describe_machine

    config = settings(args.smoke)
    print(
        ('SMOKE RUN on the CPU, tiny sizes: not GPU figures. ' if args.smoke else '')
        + describe_machine(config['device'])
    )
    table = Table(args.budget)
    print(Table.HEADER, flush=True)
    forward_rows(table, config)
    training_rows(table, config)
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as folder:
        training_run_row(table, config, Path(folder), keep=args.keep or not args.smoke)
    print(f'\nAll rows ({time.monotonic() - table.start:.0f} s):\n{Table.HEADER}\n' + '\n'.join(table.rows))
    return 1 if table.failed else 0


if __name__ == '__main__':
    sys.exit(main())
