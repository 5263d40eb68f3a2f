"""Plain helpers shared by the test modules: tiny data, option dicts, running the entries, loading scripts.

Fixtures are in ``conftest.py``; no test module imports another. The entries write ``experiments/<name>`` and
``results/<name>`` under the repository: tests name their runs with ``unique_name`` (or the ``new_name`` fixture)
and remove what they created.
"""

import copy
import csv
import filecmp
import importlib.util
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.options import ordered_yaml

from dmtnet_arch.archs.dpdnet_arch import DPDNet
from dmtnet_arch.archs.restormer_arch import Restormer
from dmtnet_arch.utils.checkpoint import RECORD_KEY, network_record
from dmtnet_arch.utils.file_util import TEMP_SUFFIX
from dmtnet_arch.utils.options import OptionError, check_options

REPO = Path(__file__).resolve().parents[1]
TRAIN_ENTRY = REPO / 'dmtnet_arch' / 'train.py'
TEST_ENTRY = REPO / 'dmtnet_arch' / 'test.py'
DDP_WORKER = REPO / 'tests' / 'ddp_worker.py'
PYTHON = sys.executable
TIMEOUT = 240
SIZE = 32  # one window of the T variant's feature grid: the whole image is one crop
NETWORK = {'type': 'DMTNet', 'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'embed_dim': 24}
TINY = {key: value for key, value in NETWORK.items() if key != 'type'}  # DMTNet(**TINY)
# with one DMSSRM (multi-scale reconstruction, dynamic selection): every parameter must get a gradient under DDP
NETWORK_S = {**NETWORK, 'variant': 'S', 'num_rbm': 1, 'num_rm': 1, 'rgm_channels': 16}
# DMTNet-S at its default width with one of everything: the scale weights exist, at a fraction of the cost
SMALL_S = {
    'type': 'DMTNet',
    'variant': 'S',
    'num_transformer_blocks': 1,
    'upsampler_channels': 16,
    'num_rbm': 1,
    'num_rm': 1,
}


def unique_name(tag: str) -> str:
    return f'pytest_{tag}_{uuid.uuid4().hex[:8]}'


def remove_outputs(root: Path, name: str):
    """experiments/, results/ and tb_logger/ folders of one experiment under ``root``, archived copies included."""
    for folder in ('experiments', 'results', 'tb_logger'):
        for path in [root / folder / name, *(root / folder).glob(f'{name}_archived_*')]:
            shutil.rmtree(path, ignore_errors=True)


def write_png16(path: Path, rgb: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_data(root: Path, count: int, height: int = SIZE, width: int = SIZE, seed: int = 0) -> Path:
    """``count`` random 16-bit samples in inputL/ inputR/ target/ named 000.png, 001.png, ..."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        target = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16)
        for folder, image in (
            ('target', target),
            ('inputL', (target * 0.7 + rng.integers(0, 9000, target.shape)).astype(np.uint16)),
            ('inputR', (target * 0.7 + rng.integers(0, 9000, target.shape)).astype(np.uint16)),
        ):
            write_png16(root / folder / f'{index:03d}.png', image)
    return root


def dataset_opt(name: str, root: Path, **extra) -> dict:
    return {
        'name': name,
        'type': 'DualPixelDataset',
        'dataroot_lqL': str(root / 'inputL'),
        'dataroot_lqR': str(root / 'inputR'),
        'dataroot_gt': str(root / 'target'),
        'io_backend': {'type': 'disk'},
        **extra,
    }


def common_options(name: str) -> dict:
    """The top-level keys every option file of these tests shares."""
    return {
        'name': name,
        'model_type': 'DualPixelModel',
        'scale': 1,
        'num_gpu': 'auto',
        'manual_seed': 0,
        'network_g': dict(NETWORK),
    }


def train_options(name: str, data: Path, total_iter: int, save_freq: int, batch: int = 2, **train_extra) -> dict:
    """Deterministic data: the crop is the whole image, no flips, no shuffling (the sampler's order is by epoch)."""
    train_set = dataset_opt(
        'tiny_train',
        data,
        gt_size=SIZE,
        use_hflip=False,
        use_vflip=False,
        use_rot=False,
        use_shuffle=False,
        num_worker_per_gpu=0,
        batch_size_per_gpu=batch,
        dataset_enlarge_ratio=1,
        prefetch_mode=None,
    )
    return {
        **common_options(name),
        'datasets': {'train': train_set},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.999]},
            # the rate halves after iteration 3: a resumed run must restore the scheduler to match
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'grad_clip': 1.0,
            'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'reduction': 'mean', 'eps': 1e-6},
            **train_extra,
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def eval_options(name: str, data: Path, checkpoint: Path | None, save_img: bool = False, **data_extra) -> dict:
    return {
        **common_options(name),
        'datasets': {'test_1': dataset_opt('tiny_test', data, **data_extra)},
        'path': {'pretrain_network_g': None if checkpoint is None else str(checkpoint), 'strict_load_g': True},
        'val': {
            'save_img': save_img,
            'suffix': None,
            'metrics': {
                'psnr': {'type': 'calculate_dp_psnr', 'protocol': '16bit'},
                'ssim': {'type': 'calculate_dp_ssim', 'protocol': '16bit'},
                'mae': {'type': 'calculate_dp_mae', 'protocol': '16bit', 'better': 'lower'},
            },
        },
    }


def write_yaml(path: Path, opt: dict) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def run(cmd: list, cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != 'DMTNET_NO_AUTOLOAD'}
    env.update(env_extra or {})
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def check_ok(result: subprocess.CompletedProcess):
    assert result.returncode == 0, (
        f'rc {result.returncode}\nSTDOUT:\n{result.stdout[-4000:]}\nSTDERR:\n{result.stderr[-6000:]}'
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun() -> list:
    script = Path(PYTHON).parent / 'torchrun'
    return [script] if script.exists() else [PYTHON, '-m', 'torch.distributed.run']


def load_params(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['params']


def temp_files(folder: Path) -> list:
    return [p for p in folder.rglob('*') if p.name.endswith(TEMP_SUFFIX)]


def complete_iterations(experiment: Path) -> list[int]:
    states = experiment / 'training_states'
    models = experiment / 'models'
    if not states.is_dir():
        return []
    iters = [int(p.name[: -len('.state')]) for p in states.glob('*.state') if p.name[: -len('.state')].isdigit()]
    return sorted(it for it in iters if (models / f'net_g_{it}.pth').is_file())


def train_until_a_state_then_sigkill(cmd: list, cwd: Path, experiment: Path, log_path: Path) -> int:
    """Start a long training, SIGKILL it once a training state is saved; the last complete iteration saved."""
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not list((experiment / 'training_states').glob('*.state')):
                assert proc.poll() is None, (
                    f'training ended early (rc {proc.returncode}):\n{log_path.read_text()[-4000:]}'
                )
                assert time.monotonic() < deadline, 'no training state was saved in time'
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = complete_iterations(experiment)
    assert saved, 'no complete checkpoint before the kill'
    return saved[-1]


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def check_tiny_test_metrics(path: Path):
    """The per-image CSV of a test run on the two-image tiny set: its columns, images and finite PSNRs."""
    header, rows = read_csv(path)
    assert header == ['image', 'category', 'psnr', 'ssim', 'mae']
    assert [row['image'] for row in rows] == ['000', '001']
    assert all(math.isfinite(float(row['psnr'])) for row in rows)


def basicsr_toolbox(root: Path, scripts=('train.py',)) -> Path:
    """A toolbox folder holding copies of BasicSR's own, unmodified ``basicsr/<script>`` files; they find the plugin
    through the installed start-up hook, so the installed copy must match this checkout."""
    import basicsr

    stale = stale_installed_files()
    assert not stale, f'the installed plugin differs from this checkout in {stale}: run `make install` first'
    (root / 'basicsr').mkdir(parents=True)
    for script in scripts:
        shutil.copy(Path(basicsr.__file__).parent / script, root / 'basicsr' / script)
    return root


def stale_installed_files() -> list[str]:
    """Plugin sources that differ between this checkout and the copy installed in site-packages."""
    installed = Path(sysconfig.get_paths()['purelib'])
    names = [str(p.relative_to(REPO)) for p in (REPO / 'dmtnet_arch').rglob('*.py')]
    names += ['dmtnet_arch_startup.py', 'dmtnet_arch.pth']

    def differs(name: str) -> bool:
        return not (installed / name).is_file() or not filecmp.cmp(REPO / name, installed / name, shallow=False)

    return [name for name in names if differs(name)]


def last_line(text: str) -> str:
    return [line for line in text.strip().splitlines() if line.strip()][-1]


def shipped(name: str, is_train: bool = True) -> dict:
    """A shipped option file as parse_options leaves it on this CPU machine."""
    opt = yaml.load((REPO / 'options' / name).read_text(), Loader=ordered_yaml()[0])
    opt.update(is_train=is_train, num_gpu=0, dist=False, rank=0, world_size=1)
    return opt


def refused(opt: dict, *fragments: str):
    """check_options refuses ``opt`` with a message holding every fragment."""
    with pytest.raises(OptionError) as error:
        check_options(opt)
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)


def changed(opt: dict, edit) -> dict:
    opt = copy.deepcopy(opt)
    edit(opt)
    return opt


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module, its ``main`` not run: the scripts are files, not an importable package."""
    spec = importlib.util.spec_from_file_location(f'{name}_script', REPO / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_model_options(network: dict, train: dict, datasets: dict | None = None) -> dict:
    """A DualPixelModel in training mode on the CPU of one process, as BasicSR's pipeline hands it to build_model."""
    return {
        'model_type': 'DualPixelModel',
        'is_train': True,
        'dist': False,
        'num_gpu': 0,
        'rank': 0,
        'world_size': 1,
        'network_g': network,
        'path': {},
        'datasets': {'train': {}} if datasets is None else datasets,
        'train': train,
    }


def random_rgb(seed: int, height: int = 16, width: int = 24) -> np.ndarray:
    """A random 16-bit RGB image."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width, 3)).astype(np.uint16)


def full_disk_link(folder: Path) -> Path:
    """A name whose writes fail with ENOSPC as on a full disk: a link to /dev/full."""
    link = folder / 'full_disk'
    link.symlink_to('/dev/full')
    return link


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes, to show that nothing changed."""
    return {p: p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def peer_checkpoint(folder: Path, peer: str, record: bool) -> Path:
    """A tiny Restormer or DPDNet checkpoint, with the plugin's record of what built it or as a bare state dict."""
    net = {
        'Restormer': lambda: Restormer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 1, 1)),
        'DPDNet': lambda: DPDNet(base_channels=4),
    }[peer]()
    path = folder / f'{peer}.pth'
    saved = {'params': net.state_dict(), RECORD_KEY: network_record(net)} if record else net.state_dict()
    torch.save(saved, path)
    return path


def make_dpdd(root: Path, stems: list, size: int = 24, split: str = 'test') -> Path:
    """The DPDD layout (``<split>_c/_l/_r``) with one scene per stem, its views named ``<stem>_L.png`` and so on."""
    rng = np.random.default_rng(1)
    for index, stem in enumerate(stems):
        image = rng.integers(0, 65536, (size, size, 3), dtype=np.uint16)
        write_png16(root / f'{split}_c' / 'source' / f'{stem}.png', image)
        write_png16(root / f'{split}_l' / 'source' / f'{stem}_L.png', image)
        write_png16(root / f'{split}_r' / 'source' / f'{stem}_R.png', image)
        write_png16(root / f'{split}_c' / 'target' / f't{index}.png', image)
    return root


def lose_one_left_view_and_add_another(root: Path, split: str = 'test'):
    """Left views of other scenes than the right ones, in the same number: pairing by position would mix scenes."""
    (root / f'{split}_l' / 'source' / 'b_L.png').unlink()
    (root / f'{split}_l' / 'source' / 'b_L.png').parent.joinpath('z_L.png').write_bytes(
        (root / f'{split}_l' / 'source' / 'a_L.png').read_bytes()
    )
