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
import csv
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from basicsr.archs import build_network  # noqa: E402
from basicsr.losses import build_loss  # noqa: E402

import dmtnet_arch  # noqa: E402,F401  (registers the plugin)
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset  # noqa: E402
from dmtnet_arch.data.synthetic_dp import generate_dataset  # noqa: E402
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_mae, calculate_dp_psnr, calculate_dp_ssim  # noqa: E402
from dmtnet_arch.utils.device_util import synchronize  # noqa: E402
from dmtnet_arch.utils.img_util import read_image, to_float  # noqa: E402
from dmtnet_arch.utils.plot_util import Panel, metric_curve, most_defocused_window, side_by_side_figure  # noqa: E402

TRAIN_OPT = ROOT / 'options' / 'train_DMTNet_synthetic.yml'
TEST_OPT = ROOT / 'options' / 'test_DMTNet_synthetic.yml'
DATA = ROOT / 'datasets' / 'synthetic'
SPLITS = ('train', 'val', 'test')
METRICS = {'psnr': calculate_dp_psnr, 'ssim': calculate_dp_ssim, 'mae': calculate_dp_mae}
VALIDATION_POINTS = 20  # points on the validation PSNR curve
# BasicSR's loop (data loading, logging, validation) over the bare steps the probe times, on the idle 2-core CPU:
# 0.07 s per iteration of the pipeline (issue 10) against 0.058 s per probe step (2026-11-25), batch 4, 64 x 64.
PIPELINE_OVERHEAD = 1.2


def make_data(args):
    """Train, validation and held-out test sets, each from its own generator seed derived from ``--seed``."""
    counts = {'train': args.train_count, 'val': args.val_count, 'test': args.test_count}
    for offset, split in enumerate(SPLITS):
        seed = 3 * args.seed + offset
        print(f'[demo] synthetic {split}: {counts[split]} images of {args.size}x{args.size} (seed {seed})', flush=True)
        shutil.rmtree(DATA / split, ignore_errors=True)
        generate_dataset(DATA / split, count=counts[split], size=args.size, seed=seed, progress=False)


def seconds_per_step(train_opt: dict, steps: int = 5) -> float:
    """Median time of a training step (forward, Charbonnier, backward, Adam) at the options' batch and crop."""
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net = build_network(dict(train_opt['network_g'])).to(device)
    loss_fn = build_loss(dict(train_opt['train']['pixel_opt'])).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    dataset_opt = train_opt['datasets']['train']
    size, batch = dataset_opt['gt_size'], dataset_opt['batch_size_per_gpu']
    lq, gt = torch.rand(batch, 6, size, size, device=device), torch.rand(batch, 3, size, size, device=device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(net(lq), gt).backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def training_overrides(train_opt: dict, iterations: int, seed: int) -> list[str]:
    """BasicSR --force_yml overrides: the schedule stretched to ``iterations``, the seed, logging frequencies."""
    val_freq = max(iterations // VALIDATION_POINTS, 1)
    return [
        f'manual_seed={seed}',
        f'train:total_iter={iterations}',
        f'train:scheduler:periods=[{iterations}]',
        f'val:val_freq={val_freq}',
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


def load_split(dataset_opt: dict) -> DualPixelDataset:
    """A dataset of the option file's split, with paths under this repository and the combined view."""
    dataset_opt = {**dataset_opt, 'phase': 'test'}
    dataset_opt.update({k: str(ROOT / v) for k, v in dataset_opt.items() if k.startswith('dataroot_')})
    return DualPixelDataset(dataset_opt)


def blurred_input_metrics(dataset: DualPixelDataset) -> dict[str, float]:
    """Each metric of the combined (blurred) view against the target, averaged over the images."""
    totals = {name: [] for name in METRICS}
    for sample in dataset:
        for name, metric in METRICS.items():
            totals[name].append(metric(sample['lqC'], sample['gt']))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def network_metrics(results: Path, dataset_name: str) -> dict[str, dict[str, float]]:
    """Per-image metrics from the CSV the test pipeline wrote, keyed by image name."""
    with open(results / f'metrics_{dataset_name}.csv') as f:
        return {row['image']: {name: float(row[name]) for name in METRICS} for row in csv.DictReader(f)}


def validation_curve(tb_dir: Path, dataset_name: str) -> tuple[list[int], list[float]]:
    """(iterations, PSNR) that BasicSR's validation logged to TensorBoard during training."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={'scalars': 0}).Reload()
    by_iteration = {event.step: event.value for event in events.Scalars(f'metrics/{dataset_name}/psnr')}
    iterations = sorted(by_iteration)
    return iterations, [by_iteration[i] for i in iterations]


def to_rgb(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the grey image: the detail that defocus blur removes."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def write_side_by_side(test_dataset, per_image: dict, visualization: Path, suffix: str, out_dir: Path, label: str):
    """input | DMTNet | target for every test image, zoomed where the generator's defocus map blurred most detail."""
    paths = {}
    for sample in test_dataset:
        name = sample['name']
        output = to_float(read_image(visualization / f'{name}_{suffix}.png'))
        defocus = np.load(Path(sample['gt_path']).parents[1] / 'defocus' / f'{name}.npy')
        size = max(defocus.shape[0] // 4, 8)
        target = to_rgb(sample['gt'])
        window = (*most_defocused_window(defocus, size, detail=gradient_magnitude(target)), size)
        panels = [
            Panel(
                to_rgb(sample['lqC']), f'input (combined view) {calculate_dp_psnr(sample["lqC"], sample["gt"]):.2f} dB'
            ),
            Panel(output, f'{label} {per_image[name]["psnr"]:.2f} dB'),
            Panel(target, 'target (all in focus)'),
        ]
        paths[name] = out_dir / f'{name}.png'
        side_by_side_figure(panels, window, paths[name])
    return paths


def most_defocused(test_dataset: DualPixelDataset) -> str:
    """The test image with the largest mean |defocus|: the one whose figure shows deblurring best (not chosen by
    the result)."""
    amounts = {
        s.name: float(np.abs(np.load(Path(s.target).parents[1] / 'defocus' / f'{s.name}.npy')).mean())
        for s in test_dataset.samples
    }
    return max(amounts, key=amounts.get)


def shown(path) -> str:
    """A path as the user would type it from the repository root."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def inference_command(weights: Path, left: Path, right: Path, out_dir: Path) -> list[str]:
    """The project's deblur-your-own-photos command (scripts/inference.py) with the demo's network options."""
    return [
        shown(sys.executable), 'scripts/inference.py', '-opt', shown(TEST_OPT), '--weights', shown(weights),
        '--left', shown(left), '--right', shown(right), '--output', shown(out_dir),
    ]  # fmt: skip


def run_inference_once(test_dataset: DualPixelDataset, weights: Path, out_dir: Path, name: str):
    """Deblur one held-out pair with the inference command, as a user would deblur their own photos."""
    sample = next(s for s in test_dataset.samples if s.name == name)
    command = inference_command(weights, Path(sample.left), Path(sample.right), out_dir)
    print('\nDeblur your own dual-pixel photos (left and right views, 8 or 16 bit) with the network just trained:')
    print('  ' + shlex.join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    target = to_float(read_image(sample.target))
    output = to_float(read_image(out_dir / Path(sample.left).name))  # inference keeps the input's name
    combined = to_float(read_image(sample.combined))
    print(
        f'  ran it on held-out pair {name}: PSNR {calculate_dp_psnr(output, target):.2f} dB '
        f'(its blurred combined view: {calculate_dp_psnr(combined, target):.2f} dB)'
    )


def print_table(blurred: dict, restored: dict, label: str):
    print('| | PSNR (dB) | SSIM | MAE |\n|---|---|---|---|')
    for row, values in (('blurred combined view', blurred), (label, restored)):
        print(f'| {row} | {values["psnr"]:.2f} | {values["ssim"]:.4f} | {values["mae"]:.4f} |')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, help="training iterations (default: the option file's total_iter)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the data and of training (default 0)')
    parser.add_argument('--train-count', type=int, default=256, help='synthetic training images (default 256)')
    parser.add_argument('--val-count', type=int, default=8, help='validation images (default 8)')
    parser.add_argument('--test-count', type=int, default=24, help='held-out test images (default 24)')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels (default 128)')
    args = parser.parse_args()
    if args.iterations is not None and args.iterations < 1:
        parser.error('--iterations must be at least 1')
    return args


def main():
    args = parse_args()
    start = time.time()
    train_opt = yaml.safe_load(TRAIN_OPT.read_text())
    test_opt = yaml.safe_load(TEST_OPT.read_text())
    iterations = args.iterations or train_opt['train']['total_iter']
    make_data(args)

    step = seconds_per_step(train_opt)
    expected = iterations * step * PIPELINE_OVERHEAD
    print(
        f'[demo] {iterations} training iterations (fixed); a probe of this machine now: {step:.3f} s per step, '
        f'so expect about {expected / 60:.1f} minutes of training (longer when the machine is busy)',
        flush=True,
    )
    name, test_name = train_opt['name'], test_opt['name']
    for stale in (ROOT / 'experiments' / name, ROOT / 'tb_logger' / name, ROOT / 'results' / test_name):
        shutil.rmtree(stale, ignore_errors=True)
    train_start = time.time()
    run_entry('train', TRAIN_OPT, *training_overrides(train_opt, iterations, args.seed))
    train_minutes = (time.time() - train_start) / 60
    run_entry('test', TEST_OPT)

    test_dataset = load_split(test_opt['datasets']['test'])
    val_dataset = load_split(train_opt['datasets']['val'])
    results = ROOT / 'results' / test_name
    label = f'DMTNet-{train_opt["network_g"]["variant"]}'
    per_image = network_metrics(results, test_dataset.opt['name'])
    restored = {name: float(np.mean([m[name] for m in per_image.values()])) for name in METRICS}
    blurred = blurred_input_metrics(test_dataset)
    figures = write_side_by_side(
        test_dataset, per_image, results / 'visualization' / test_dataset.opt['name'], test_name,
        results / 'side_by_side', label,
    )  # fmt: skip
    val_iterations, val_psnr = validation_curve(ROOT / 'tb_logger' / name, val_dataset.opt['name'])
    curve = results / 'validation_psnr.png'
    metric_curve(
        curve, val_iterations, val_psnr, blurred_input_metrics(val_dataset)['psnr'],
        f'{label} on {len(val_dataset)} validation images', 'blurred combined view', 'PSNR (dB)',
    )  # fmt: skip

    print(f'\nHeld-out synthetic test set: {len(test_dataset)} images, 16-bit protocol, {iterations} iterations')
    print_table(blurred, restored, label)
    print(f'\n{label} gains {restored["psnr"] - blurred["psnr"]:+.2f} dB PSNR over the blurred input.')
    showcase = most_defocused(test_dataset)
    print(f'Side by side (input | output | target, zoom on a defocused region): {shown(figures[showcase])}')
    print(f'  and for every test image: {shown(results / "side_by_side")}/')
    print(f'Validation PSNR against iteration: {shown(curve)}')
    weights = ROOT / 'experiments' / name / 'models' / 'net_g_latest.pth'
    run_inference_once(test_dataset, weights, results / 'own_photos', showcase)
    print(
        f'\n[demo] finished in {(time.time() - start) / 60:.1f} minutes '
        f'({train_minutes:.1f} of them training; expected {expected / 60:.1f} from the probe)'
    )


if __name__ == '__main__':
    main()
