"""The one-command demo: synthetic dual-pixel data, a short DMTNet training, a held-out test, a results table.

1. Writes synthetic train / val / test sets (scripts/make_synthetic_dp.py's generator) under datasets/synthetic.
2. Times a few training steps on this machine and picks the iteration count that fits ``--train-minutes``.
3. Trains through ``dmtnet_arch/train.py`` (BasicSR's pipeline) with options/train_DMTNet_synthetic.yml.
4. Tests through ``dmtnet_arch/test.py`` with options/test_DMTNet_synthetic.yml (16-bit metrics, 16-bit outputs).
5. Prints blurred combined view vs DMTNet (PSNR, SSIM, MAE) and writes input | output | target images.
"""

import argparse
import csv
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
from dmtnet_arch.data.dual_pixel_io import read_image, to_float  # noqa: E402
from dmtnet_arch.data.synthetic_dp import generate_dataset  # noqa: E402
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_mae, calculate_dp_psnr, calculate_dp_ssim  # noqa: E402

TRAIN_OPT = ROOT / 'options' / 'train_DMTNet_synthetic.yml'
TEST_OPT = ROOT / 'options' / 'test_DMTNet_synthetic.yml'
DATA = ROOT / 'datasets' / 'synthetic'
METRICS = {'psnr': calculate_dp_psnr, 'ssim': calculate_dp_ssim, 'mae': calculate_dp_mae}


def make_data(args):
    """Train, validation and held-out test sets from three different seeds."""
    for split, count, seed in (('train', args.train_count, 0), ('val', 4, 1), ('test', args.test_count, 2)):
        print(f'[demo] synthetic {split}: {count} images of {args.size}x{args.size}', flush=True)
        shutil.rmtree(DATA / split, ignore_errors=True)
        generate_dataset(DATA / split, count=count, size=args.size, seed=seed, progress=False)


def seconds_per_iteration(train_opt: dict) -> float:
    """Median time of a training step (forward, Charbonnier, backward, Adam) at the options' batch and crop."""
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    net = build_network(dict(train_opt['network_g'])).to(device)
    loss_fn = build_loss(dict(train_opt['train']['pixel_opt'])).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    dataset_opt = train_opt['datasets']['train']
    size, batch = dataset_opt['gt_size'], dataset_opt['batch_size_per_gpu']
    lq, gt = torch.rand(batch, 6, size, size, device=device), torch.rand(batch, 3, size, size, device=device)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(net(lq), gt).backward()
        optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def run_entry(entry: str, opt_path: Path, *overrides: str):
    """Run dmtnet_arch/<entry>.py with BasicSR's --force_yml overrides; stop the demo if it fails."""
    command = [sys.executable, str(ROOT / 'dmtnet_arch' / f'{entry}.py'), '-opt', str(opt_path)]
    if overrides:
        command += ['--force_yml', *overrides]
    print('[demo] ' + ' '.join(command[1:]), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def blurred_input_metrics(test_dataset: DualPixelDataset) -> dict[str, float]:
    """Each metric of the combined (blurred) view against the target, averaged over the test images."""
    totals = {name: [] for name in METRICS}
    for sample in test_dataset:
        for name, metric in METRICS.items():
            totals[name].append(metric(sample['lqC'], sample['gt']))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def network_metrics(results: Path, dataset_name: str) -> dict[str, float]:
    """Means of the per-image CSV the test pipeline wrote."""
    with open(results / f'metrics_{dataset_name}.csv') as f:
        rows = list(csv.DictReader(f))
    return {name: float(np.mean([float(r[name]) for r in rows])) for name in METRICS}


def write_side_by_side(test_dataset: DualPixelDataset, visualization: Path, out_dir: Path, suffix: str) -> int:
    """input | DMTNet | target strips (8-bit PNG for viewing; the 16-bit outputs stay in ``visualization``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample in test_dataset:
        name = sample['name']
        output = to_float(read_image(visualization / f'{name}_{suffix}.png'))
        strip = np.concatenate(
            [sample['lqC'].permute(1, 2, 0).numpy(), output, sample['gt'].permute(1, 2, 0).numpy()], 1
        )
        cv2.imwrite(str(out_dir / f'{name}.png'), (np.clip(strip[..., ::-1], 0, 1) * 255).round().astype(np.uint8))
    return len(test_dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--train-minutes', type=float, default=7.0, help='training time budget (default 7)')
    parser.add_argument('--train-count', type=int, default=64)
    parser.add_argument('--test-count', type=int, default=12)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--min-iter', type=int, default=50)
    parser.add_argument('--max-iter', type=int, default=20000)
    args = parser.parse_args()
    start = time.time()
    train_opt = yaml.safe_load(TRAIN_OPT.read_text())
    test_opt = yaml.safe_load(TEST_OPT.read_text())
    make_data(args)

    step = seconds_per_iteration(train_opt)
    iters = int(min(args.max_iter, max(args.min_iter, args.train_minutes * 60 / step)))
    print(f'[demo] {step:.3f} s per iteration here: {iters} iterations fit {args.train_minutes:g} minutes', flush=True)
    shutil.rmtree(ROOT / 'experiments' / train_opt['name'], ignore_errors=True)
    shutil.rmtree(ROOT / 'results' / test_opt['name'], ignore_errors=True)
    schedule = [f'train:total_iter={iters}', f'train:scheduler:periods=[{iters}]', f'val:val_freq={iters}']
    logging = [f'logger:save_checkpoint_freq={iters}', f'logger:print_freq={max(iters // 10, 1)}']
    run_entry('train', TRAIN_OPT, *schedule, *logging)
    run_entry('test', TEST_OPT)

    dataset_opt = {**test_opt['datasets']['test'], 'phase': 'test'}
    dataset_opt.update({k: str(ROOT / v) for k, v in dataset_opt.items() if k.startswith('dataroot_')})
    test_dataset = DualPixelDataset(dataset_opt)
    results = ROOT / 'results' / test_opt['name']
    blurred = blurred_input_metrics(test_dataset)
    restored = network_metrics(results, dataset_opt['name'])
    count = write_side_by_side(test_dataset, results / 'visualization' / dataset_opt['name'], results / 'side_by_side',
                               test_opt['name'])  # fmt: skip

    variant = train_opt['network_g']['variant']
    print(f'\nHeld-out synthetic test set: {len(test_dataset)} images, 16-bit protocol, {iters} training iterations')
    print('| | PSNR (dB) | SSIM | MAE |\n|---|---|---|---|')
    for label, values in (('blurred combined view', blurred), (f'DMTNet-{variant}', restored)):
        print(f'| {label} | {values["psnr"]:.2f} | {values["ssim"]:.4f} | {values["mae"]:.4f} |')
    print(f'\nDMTNet gains {restored["psnr"] - blurred["psnr"]:+.2f} dB PSNR over the blurred input.')
    print(f'{count} input | output | target images in {results / "side_by_side"}')
    print(f'[demo] finished in {(time.time() - start) / 60:.1f} minutes')


if __name__ == '__main__':
    main()
