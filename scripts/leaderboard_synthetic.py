"""Short training of each model on the same synthetic data with the same budget, then the leaderboard of them all.

Model M is trained from options/train_M.yml and tested with options/test_M.yml (network, loss, optimizer type and
metric protocol from those files; data, patch, batch, iterations, learning rate and seed common: see
dmtnet_arch/short_training.py). Trainings already finished (their net_g_latest.pth exists) are not repeated.

    python scripts/leaderboard_synthetic.py --models DMTNet_T DMTNet_S --iters 40 --out results/leaderboard_synthetic
"""

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmtnet_arch.data.synthetic_dp import generate_dataset  # noqa: E402
from dmtnet_arch.short_training import (  # noqa: E402
    Budget,
    matching_test_options,
    read_options,
    short_training_options,
    write_options,
)

DEFAULT_MODELS = ['DMTNet_T', 'DMTNet_S', 'DMTNet_B', 'DMTNet_L', 'DMTNet_H', 'Restormer_DP', 'DPDNet', 'IFAN']


def make_data(root: Path, size: int):
    """The synthetic train (64 scenes, seed 0) and test (12 scenes, seed 1) sets, unless already there."""
    for split, count, seed in (('train', 64, 0), ('test', 12, 1)):
        if not (root / split / 'target').is_dir():
            generate_dataset(root / split, count=count, size=size, seed=seed)


def train(model: str, args, budget: Budget) -> Path:
    """Train ``model`` (unless done before); returns the test option file for its weights."""
    name = f'short_{model}_{budget.iterations}it'
    trained = short_training_options(read_options(ROOT / 'options' / f'train_{model}.yml'), name,
                                     args.data / 'train', budget)  # fmt: skip
    train_yml = write_options(args.out / 'options' / f'train_{model}.yml', trained)
    weights = ROOT / 'experiments' / name / 'models' / 'net_g_latest.pth'
    if not weights.is_file():
        print(f'training {model}: {budget.iterations} iterations', flush=True)
        subprocess.run([sys.executable, str(ROOT / 'dmtnet_arch' / 'train.py'), '-opt', str(train_yml)], check=True)
    tested = matching_test_options(read_options(ROOT / 'options' / f'test_{model}.yml'), trained, f'{name}_test',
                                   args.data / 'test', weights)  # fmt: skip
    return write_options(args.out / 'options' / f'test_{model}.yml', tested)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS, help='M for options/train_M.yml, test_M.yml')
    parser.add_argument('--data', type=Path, default=ROOT / 'datasets' / 'synthetic_board')
    parser.add_argument('--size', type=int, default=128, help='synthetic image size when the data is made')
    parser.add_argument('--iters', type=int, default=Budget.iterations)
    parser.add_argument('--patch', type=int, default=Budget.patch)
    parser.add_argument('--batch', type=int, default=Budget.batch)
    parser.add_argument('--lr', type=float, default=Budget.lr)
    parser.add_argument('--train-only', action='store_true', help='train, write the test options, no leaderboard')
    parser.add_argument('--out', type=Path, default=ROOT / 'results' / 'leaderboard_synthetic')
    args = parser.parse_args()
    budget = Budget(iterations=args.iters, patch=args.patch, batch=args.batch, lr=args.lr)
    make_data(args.data, args.size)
    test_options = [train(model, args, budget) for model in args.models]
    if not args.train_only:
        from dmtnet_arch.leaderboard import run_leaderboard

        run_leaderboard(test_options, args.out, published=True)


if __name__ == '__main__':
    main()
