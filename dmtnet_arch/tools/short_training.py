"""Short training of any model on one data set with one time budget (the synthetic leaderboard, docs/leaderboard.md).

From a model's own train/test option files it keeps what makes the model itself: ``model_type``, ``network_g``,
its loss, optimizer and learning rate (held constant: the number of iterations is not known in advance) and its
other training switches (e.g. ``grad_clip``). It replaces what must be the same for every model of a fair
comparison: the data (a folder in the ``inputL/ inputR/ inputC/ target/`` layout of
scripts/make_synthetic_dp.py), the patch and batch size, the seed, and the budget: the
training runs through the plugin's training entry for a fixed wall-clock time, saving the network every iteration,
and the newest complete network is kept. Progressive patch training, EMA and validation are switched off.
"""

import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

FOLDER_VIEWS = {'dataroot_lqL': 'inputL', 'dataroot_lqR': 'inputR', 'dataroot_lqC': 'inputC', 'dataroot_gt': 'target'}
# keys that locate another data set; the folder layout above replaces them
OTHER_LOCATIONS = ('dataroot_dpdd', 'split', 'category_file', 'meta_info_file', 'filename_tmpl', 'dataroot_lq')
PROGRESSIVE_KEYS = ('mini_batch_sizes', 'iters', 'gt_sizes')


@dataclass(frozen=True)
class Budget:
    seconds: float = 180.0  # of training, from BasicSR's "Start training" on
    patch: int = 32
    batch: int = 2
    lr: float | None = None  # None: the model's own learning rate, held constant
    seed: int = 0
    max_iterations: int = 1_000_000  # total_iter: the clock stops training first


def on_folder(dataset_opt: dict, root, name: str) -> dict:
    """``dataset_opt`` (type and model-specific switches kept) reading the views of folder ``root``."""
    dataset = {k: v for k, v in dataset_opt.items() if k not in OTHER_LOCATIONS and k not in FOLDER_VIEWS}
    dataset.update({key: str(Path(root) / folder) for key, folder in FOLDER_VIEWS.items()})
    dataset.update(name=name, io_backend={'type': 'disk'})
    return dataset


def short_training_options(train_opt: dict, name: str, train_root, budget: Budget) -> dict:
    """The model's training options with the common data and budget."""
    train_set = on_folder(train_opt['datasets']['train'], train_root, 'short_train')
    for key in PROGRESSIVE_KEYS:
        train_set.pop(key, None)
    train_set.update(
        gt_size=budget.patch,
        batch_size_per_gpu=budget.batch,
        num_worker_per_gpu=0,
        use_shuffle=True,
        dataset_enlarge_ratio=1,
        prefetch_mode=None,
    )
    train = dict(train_opt['train'])
    train.update(
        optim_g={**train['optim_g'], 'lr': budget.lr or train['optim_g']['lr']},
        scheduler={'type': 'MultiStepRestartLR', 'milestones': [], 'gamma': 1},  # constant: the length is unknown
        total_iter=budget.max_iterations,
        warmup_iter=-1,
        ema_decay=0,
    )
    opt = {k: v for k, v in train_opt.items() if k not in ('val', 'datasets', 'train', 'logger', 'path')}
    opt.update(
        name=name,
        manual_seed=budget.seed,
        datasets={'train': train_set},
        path={'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        train=train,
        logger={
            'print_freq': 1,
            'save_checkpoint_freq': 1,
            'use_tb_logger': False,
            'wandb': {'project': None, 'resume_id': None},
        },
    )
    return opt


def matching_test_options(test_opt: dict, trained_opt: dict, name: str, test_root, weights) -> dict:
    """The model's test options (metrics and their protocol kept) on folder ``test_root`` with ``weights``, for the
    network exactly as ``trained_opt`` trained it."""
    test_set = next(iter(test_opt['datasets'].values()))
    opt = {'name': name, **{k: v for k, v in test_opt.items() if k not in ('name', 'datasets', 'path', 'network_g')}}
    opt['val'] = {**test_opt['val'], 'save_img': False}
    opt.update(
        manual_seed=trained_opt.get('manual_seed', 0),
        datasets={'test': on_folder(test_set, test_root, 'synthetic_test')},
        network_g=trained_opt['network_g'],
        path={'pretrain_network_g': str(weights), 'param_key_g': 'params', 'strict_load_g': True},
    )
    return opt


TRAINING_STARTS = 'Start training from epoch'


def numbered_files(folder: Path, pattern: str) -> dict[int, Path]:
    """``{n: path}`` of the files in ``folder`` whose whole name matches ``pattern`` (one group: the number)."""
    matches = ((re.fullmatch(pattern, p.name), p) for p in folder.glob('*')) if folder.is_dir() else ()
    return {int(m.group(1)): p for m, p in matches if m}


def saved_networks(experiment: Path) -> dict[int, Path]:
    return numbered_files(experiment / 'models', r'net_g_(\d+)\.pth')


def prune_checkpoints(experiment: Path):
    """Keep only the newest network file and no training state (these runs are never resumed)."""
    networks = saved_networks(experiment)
    for n, path in networks.items():
        if n < max(networks):
            path.unlink(missing_ok=True)
    for path in numbered_files(experiment / 'training_states', r'(\d+)\.state').values():
        path.unlink(missing_ok=True)


def train_for(train_yml: Path, experiment: Path, seconds: float, log_path: Path) -> dict:
    """Run the plugin's training entry on ``train_yml`` for ``seconds`` of training (and, when no iteration is
    complete by then, until the first is), then stop it.

    Returns the newest complete network (``weights``), its iteration and the training time actually spent.
    """
    entry = Path(__file__).resolve().parents[1] / 'train.py'
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, str(entry), '-opt', str(train_yml)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = threading.Event()

    def copy_log():
        try:
            with open(log_path, 'w') as log:
                for line in process.stdout:
                    log.write(line)
                    if TRAINING_STARTS in line:
                        started.set()
        finally:
            started.set()  # the process ended before training started: stop waiting

    reader = threading.Thread(target=copy_log, daemon=True)
    reader.start()
    started.wait()
    start = time.monotonic()
    # past the budget, the iteration under way completes: every model gets at least one update
    while process.poll() is None and (time.monotonic() - start < seconds or not saved_networks(experiment)):
        time.sleep(0.5)
        prune_checkpoints(experiment)
    elapsed = time.monotonic() - start
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait()
    reader.join()
    prune_checkpoints(experiment)
    networks = saved_networks(experiment)
    if not networks:
        raise RuntimeError(f'{train_yml}: no network was saved in {seconds:.0f} s of training; see {log_path}')
    iteration = max(networks)
    return {'weights': str(networks[iteration]), 'iterations': iteration, 'seconds': round(elapsed, 1)}
