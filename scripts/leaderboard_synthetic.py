"""Short training of each model on the same synthetic data with the same time budget, then their leaderboard.

Model M is trained from options/train_M.yml and tested with options/test_M.yml (network, loss, optimizer,
learning rate and metric protocol from those files; data, patch, batch, seed and training time common: see
dmtnet_arch/tools/short_training.py). Trainings already done (their record in OUT/budget/ and weights exist) are kept.

    python scripts/leaderboard_synthetic.py --models DMTNet_T DMTNet_S --seconds 180 --out results/leaderboard_synthetic
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.data.synthetic_dp import generate_dataset  # noqa: E402
from dmtnet_arch.tools.leaderboard import run_leaderboard  # noqa: E402
from dmtnet_arch.tools.short_training import (  # noqa: E402
    Budget,
    matching_test_options,
    short_training_options,
    train_for,
)
from dmtnet_arch.utils.file_util import write_bytes_atomically  # noqa: E402
from dmtnet_arch.utils.options import read_option_file, write_option_file  # noqa: E402

DEFAULT_MODELS = ['DMTNet_T', 'DMTNet_S', 'DMTNet_B', 'DMTNet_L', 'DMTNet_H', 'Restormer_DP', 'DPDNet', 'IFAN']


def make_data(root: Path, size: int):
    """The synthetic train (64 scenes, seed 0) and test (12 scenes, seed 1) sets, unless already there."""
    for split, count, seed in (('train', 64, 0), ('test', 12, 1)):
        if not (root / split / 'target').is_dir():
            generate_dataset(root / split, count=count, size=size, seed=seed)


def train(model: str, args, budget: Budget) -> dict:
    """Train ``model`` for the budget (unless done before); returns its record with its test option file."""
    name = f'short_{model}_{budget.seconds:.0f}s'
    record_path = args.out / 'budget' / f'{model}.json'
    if record_path.is_file() and Path(json.loads(record_path.read_text())['weights']).is_file():
        return json.loads(record_path.read_text())
    trained = short_training_options(
        read_option_file(ROOT / 'options' / f'train_{model}.yml'), name, args.data / 'train', budget
    )
    train_yml = write_option_file(args.out / 'options' / f'train_{model}.yml', trained)
    print(f'training {model} for {budget.seconds:.0f} s', flush=True)
    record = train_for(train_yml, ROOT / 'experiments' / name, budget.seconds, args.out / 'budget' / f'{model}.log')
    tested = matching_test_options(
        read_option_file(ROOT / 'options' / f'test_{model}.yml'),
        trained,
        f'{name}_test',
        args.data / 'test',
        record['weights'],
    )
    record.update(model=model, test_options=str(write_option_file(args.out / 'options' / f'test_{model}.yml', tested)))
    write_bytes_atomically(record_path, json.dumps(record, indent=1).encode())
    print(f'{model}: {record["iterations"]} iterations in {record["seconds"]} s', flush=True)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS, help='M for options/train_M.yml, test_M.yml')
    parser.add_argument('--data', type=Path, default=ROOT / 'datasets' / 'synthetic_board')
    parser.add_argument('--size', type=int, default=128, help='synthetic image size when the data is made')
    parser.add_argument('--seconds', type=float, default=Budget.seconds, help='training time per model')
    parser.add_argument('--patch', type=int, default=Budget.patch)
    parser.add_argument('--batch', type=int, default=Budget.batch)
    parser.add_argument('--lr', type=float, help="one learning rate for all (default: each model's own)")
    parser.add_argument('--train-only', action='store_true', help='train, write the test options, no leaderboard')
    parser.add_argument('--out', type=Path, default=ROOT / 'results' / 'leaderboard_synthetic')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    budget = Budget(seconds=args.seconds, patch=args.patch, batch=args.batch, lr=args.lr)
    make_data(args.data, args.size)
    records = [train(model, args, budget) for model in args.models]
    if not args.train_only:
        command = ' '.join(['python scripts/leaderboard_synthetic.py', *(sys.argv[1:] if argv is None else argv)])
        run_leaderboard([r['test_options'] for r in records], args.out, published=True, command=command)
    return 0


if __name__ == '__main__':
    sys.exit(main())
