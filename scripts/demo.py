"""The one-command demo: synthetic dual-pixel data, a fixed DMTNet training, a held-out test, a table and pictures.

1. Writes synthetic train / val / test sets (scripts/make_synthetic_dp.py's generator) under datasets/synthetic.
2. Times a few training steps to say how long the fixed amount of work will take on this machine right now.
3. Trains through ``dmtnet_arch/train.py`` (BasicSR's pipeline) with options/train_DMTNet_synthetic.yml: a fixed
   number of iterations (the option file's ``total_iter``, or ``--iterations``), so the result does not depend on
   how fast or busy the machine is.
4. Tests through ``dmtnet_arch/test.py`` with options/test_DMTNet_synthetic.yml (16-bit metrics, 16-bit outputs).
5. Prints blurred combined view vs DMTNet (PSNR, SSIM, MAE), writes input | output | target figures with a zoomed
   defocused region and the validation PSNR curve, then deblurs one held-out pair with the inference command.
"""

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.synthetic_dp import generate_dataset  # noqa: E402
from dmtnet_arch.metrics.dual_pixel_metric import (  # noqa: E402
    calculate_dp_psnr,  # noqa: E402
)
from dmtnet_arch.models.dual_pixel_model import read_metric_files  # noqa: E402
from dmtnet_arch.tools.benchmark import training_iterations_per_second  # noqa: E402
from dmtnet_arch.tools.synthetic_demo import (  # noqa: E402
    METRICS,
    blurred_input_metrics,
    load_split,
    most_defocused,
    validation_curve,
    write_side_by_side,
)
from dmtnet_arch.utils.img_util import read_image, to_float  # noqa: E402
from dmtnet_arch.utils.options import read_option_file  # noqa: E402
from dmtnet_arch.utils.plot_util import metric_curve  # noqa: E402

TRAIN_OPT = ROOT / 'options' / 'train_DMTNet_synthetic.yml'
TEST_OPT = ROOT / 'options' / 'test_DMTNet_synthetic.yml'
DATA = ROOT / 'datasets' / 'synthetic'
SPLITS = ('train', 'val', 'test')
VALIDATION_POINTS = 20  # points on the validation PSNR curve
PIPELINE_OVERHEAD = 1.2  # BasicSR's loop (data, logging, validation) over the bare steps timed (docs/training.md)


def make_data(args):
    """Train, validation and held-out test sets, each from its own generator seed derived from ``--seed``."""
    counts = {'train': args.train_count, 'val': args.val_count, 'test': args.test_count}
    for offset, split in enumerate(SPLITS):
        seed = 3 * args.seed + offset
        print(f'[demo] synthetic {split}: {counts[split]} images of {args.size}x{args.size} (seed {seed})', flush=True)
        shutil.rmtree(DATA / split, ignore_errors=True)
        generate_dataset(DATA / split, count=counts[split], size=args.size, seed=seed, progress=False)


def expected_training_seconds(train_opt: dict, iterations: int) -> float:
    """A probe of this machine now: training steps at the options' batch and crop, times the iterations."""
    dataset_opt = train_opt['datasets']['train']
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    rate = training_iterations_per_second(
        train_opt['network_g'], device, dataset_opt['gt_size'], dataset_opt['batch_size_per_gpu'], iters=4, amp=None
    )
    print(f'[demo] a probe of this machine now: {1 / rate:.3f} s per training step', flush=True)
    return iterations / rate * PIPELINE_OVERHEAD


def training_overrides(iterations: int, seed: int) -> list[str]:
    """BasicSR --force_yml overrides: the schedule stretched to ``iterations``, the seed, logging frequencies."""
    return [
        f'manual_seed={seed}',
        f'train:total_iter={iterations}',
        f'train:scheduler:periods=[{iterations}]',
        f'val:val_freq={max(iterations // VALIDATION_POINTS, 1)}',
        f'logger:save_checkpoint_freq={iterations}',
        f'logger:print_freq={max(iterations // 10, 1)}',
    ]


def run_entry(entry: str, opt_path: Path, *overrides: str):
    """Run dmtnet_arch/<entry>.py with BasicSR's --force_yml overrides; stop the demo if it fails."""
    command = [sys.executable, str(ROOT / 'dmtnet_arch' / f'{entry}.py'), '-opt', str(opt_path)]
    if overrides:
        command += ['--force_yml', *overrides]
    print('[demo] ' + ' '.join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def display_path(path) -> str:
    """A path as the user would type it from the repository root."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_inference_once(test_dataset, weights: Path, out_dir: Path, name: str):
    """Deblur one held-out pair with the inference command (scripts/inference.py), as a user would their photos."""
    sample = next(s for s in test_dataset.samples if s.name == name)
    arguments = {'-opt': TEST_OPT, '--weights': weights, '--left': sample.left, '--right': sample.right}
    command = [display_path(sys.executable), 'scripts/inference.py']
    for flag, value in {**arguments, '--output': out_dir}.items():
        command += [flag, display_path(value)]
    print('\nDeblur your own dual-pixel photos (left and right views, 8 or 16 bit) with the network just trained:')
    print('  ' + shlex.join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    target, combined = (to_float(read_image(path)) for path in (sample.target, sample.combined))
    output = to_float(read_image(out_dir / Path(sample.left).name))  # inference keeps the input's name
    print(
        f'  ran it on held-out pair {name}: PSNR {calculate_dp_psnr(output, target):.2f} dB '
        f'(its blurred combined view: {calculate_dp_psnr(combined, target):.2f} dB)'
    )


def print_table(blurred: dict, restored: dict, label: str):
    print('| | PSNR (dB) | SSIM | MAE |\n|---|---|---|---|')
    for row, values in (('blurred combined view', blurred), (label, restored)):
        print(f'| {row} | {values["psnr"]:.2f} | {values["ssim"]:.4f} | {values["mae"]:.4f} |')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, help="training iterations (default: the option file's total_iter)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the data and of training (default 0)')
    parser.add_argument('--train-count', type=int, default=256, help='synthetic training images (default 256)')
    parser.add_argument('--val-count', type=int, default=8, help='validation images (default 8)')
    parser.add_argument('--test-count', type=int, default=24, help='held-out test images (default 24)')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels (default 128)')
    return parser


def train_and_test(train_opt: dict, test_opt: dict, iterations: int, seed: int) -> float:
    """Train from scratch (stale runs of the same names removed) and test; returns the training minutes."""
    for stale in (ROOT / 'experiments' / train_opt['name'], ROOT / 'tb_logger' / train_opt['name']):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(ROOT / 'results' / test_opt['name'], ignore_errors=True)
    start = time.time()
    run_entry('train', TRAIN_OPT, *training_overrides(iterations, seed))
    minutes = (time.time() - start) / 60
    run_entry('test', TEST_OPT)
    return minutes


def report(train_opt: dict, test_opt: dict, iterations: int) -> str:
    """Print the table, write the figures and the curve; returns the showcase image's name."""
    test_dataset = load_split(test_opt['datasets']['test'], ROOT)
    val_dataset = load_split(train_opt['datasets']['val'], ROOT)
    results, dataset_name = ROOT / 'results' / test_opt['name'], test_dataset.opt['name']
    label = f'DMTNet-{train_opt["network_g"]["variant"]}'
    per_image = read_metric_files(results / f'metrics_{dataset_name}').images
    restored = {name: float(np.mean([m[name] for m in per_image.values()])) for name in METRICS}
    blurred = blurred_input_metrics(test_dataset)
    psnr = {name: metrics['psnr'] for name, metrics in per_image.items()}
    outputs = results / 'visualization' / dataset_name
    figures = write_side_by_side(test_dataset, psnr, outputs, test_opt['name'], results / 'side_by_side', label)
    val_iterations, val_psnr = validation_curve(ROOT / 'tb_logger' / train_opt['name'], val_dataset.opt['name'])
    curve = results / 'validation_psnr.png'
    val_label = f'{label} on {len(val_dataset)} validation images'
    val_blurred = blurred_input_metrics(val_dataset)['psnr']
    metric_curve(curve, val_iterations, val_psnr, val_blurred, val_label, 'blurred combined view', 'PSNR (dB)')
    print(f'\nHeld-out synthetic test set: {len(test_dataset)} images, 16-bit protocol, {iterations} iterations')
    print_table(blurred, restored, label)
    print(f'\n{label} gains {restored["psnr"] - blurred["psnr"]:+.2f} dB PSNR over the blurred input.')
    showcase = most_defocused(test_dataset)
    print(f'Side by side (input | output | target, zoom on a defocused region): {display_path(figures[showcase])}')
    print(f'  and for every test image: {display_path(results / "side_by_side")}/')
    print(f'Validation PSNR against iteration: {display_path(curve)}')
    weights = ROOT / 'experiments' / train_opt['name'] / 'models' / 'net_g_latest.pth'
    run_inference_once(test_dataset, weights, results / 'own_photos', showcase)
    return showcase


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        parser.error('--iterations must be at least 1')
    start = time.time()
    train_opt, test_opt = read_option_file(TRAIN_OPT), read_option_file(TEST_OPT)
    iterations = args.iterations or train_opt['train']['total_iter']
    make_data(args)
    expected = expected_training_seconds(train_opt, iterations) / 60
    print(
        f'[demo] {iterations} training iterations (fixed): expect about {expected:.1f} minutes of training '
        '(longer when the machine is busy)',
        flush=True,
    )
    train_minutes = train_and_test(train_opt, test_opt, iterations, args.seed)
    report(train_opt, test_opt, iterations)
    print(
        f'\n[demo] finished in {(time.time() - start) / 60:.1f} minutes '
        f'({train_minutes:.1f} of them training; expected {expected:.1f} from the probe)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
