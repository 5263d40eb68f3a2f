"""Validation and testing on every rank of a CPU data-parallel run, two "nodes" on this machine, a bad validation
image under DDP, and resuming through the toolbox's own ``basicsr/train.py`` (SIGKILL, then ``--auto_resume`` from
another directory); plus loading training states with ``weights_only=True`` and falling back past a corrupt one.

Tiny runs (DMTNet-T with one transformer block, 32 x 32 images) through torchrun with the gloo backend.
"""

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import basicsr
import numpy as np
import pytest
import torch

from dmtnet_arch import compat
from tests.helpers import (
    NETWORK,
    PYTHON,
    REPO,
    TEST_ENTRY,
    TIMEOUT,
    TRAIN_ENTRY,
    basicsr_toolbox,
    check_ok,
    dataset_opt,
    eval_options,
    free_port,
    make_data,
    read_csv,
    remove_outputs,
    run,
    torchrun,
    train_options,
    train_until_a_state_then_sigkill,
    unique_name,
    write_yaml,
)

VAL_IMAGES = 3  # odd: the two ranks get shares of different lengths
TOTAL_ITER = 4
VAL_FREQ = 2
# every line a worker writes, prefixed with its global rank
TEE = ['--tee', '3', '--log-line-prefix-template', '[rank${rank}]:']


def options_with_validation(name: str, data: Path, val: Path, total_iter: int = TOTAL_ITER, **val_extra) -> dict:
    """Training with EMA and a ``val`` section that validates every VAL_FREQ iterations and saves its images."""
    opt = train_options(name, data, total_iter=total_iter, save_freq=total_iter, batch=1, ema_decay=0.9)
    opt['datasets']['val'] = dataset_opt('tiny_val', val, **val_extra)
    opt['val'] = {**eval_options(name, val, None)['val'], 'val_freq': VAL_FREQ, 'save_img': True}
    return opt


def torchrun_two_ranks(script: Path, yml: Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    cmd = [*torchrun(), '--nproc_per_node=2', f'--master_port={free_port()}', *TEE]
    return run([*cmd, script, '-opt', yml, '--launcher', 'pytorch'], cwd)


def options_for_testing(name: str, val: Path, checkpoint: Path, categories: Path) -> dict:
    opt = eval_options(name, val, checkpoint, save_img=True, category_file=str(categories))
    opt['path']['param_key_g'] = 'params_ema'
    opt['datasets']['test_1']['name'] = 'tiny_val'
    return opt


def metric_rows(path: Path) -> dict[str, dict]:
    header, rows = read_csv(path)
    assert header == ['image', 'category', 'psnr', 'ssim', 'mae']
    return {row['image']: row for row in rows}


def assert_same_metrics(rows: dict, reference: dict):
    assert list(rows) == list(reference) == [f'{i:03d}' for i in range(VAL_IMAGES)]
    for image, row in rows.items():
        for metric in ('psnr', 'ssim', 'mae'):
            assert float(row[metric]) == pytest.approx(float(reference[image][metric]), abs=1e-6), (image, metric)


@pytest.fixture(scope='module')
def ddp_training(tmp_path_factory):
    """2 ranks train with validation at 2 and 4; then one process tests the saved EMA weights of iteration 4."""
    tmp = tmp_path_factory.mktemp('ddp_val')
    data, val = make_data(tmp / 'train', 2), make_data(tmp / 'val', VAL_IMAGES, seed=5)
    categories = tmp / 'categories.txt'
    categories.write_text(f'images {VAL_IMAGES}\nindoor 0\n')
    name, reference = unique_name('ddp_val'), unique_name('ddp_val_reference')
    try:
        training = torchrun_two_ranks(
            TRAIN_ENTRY, write_yaml(tmp / 'train.yml', options_with_validation(name, data, val))
        )
        check_ok(training)
        checkpoint = REPO / 'experiments' / name / 'models' / f'net_g_{TOTAL_ITER}.pth'
        # one process, one thread per process as torchrun gives each rank
        single = run(
            [
                PYTHON,
                TEST_ENTRY,
                '-opt',
                write_yaml(tmp / 'ref.yml', options_for_testing(reference, val, checkpoint, categories)),
            ],
            tmp,
            {'OMP_NUM_THREADS': '1'},
        )
        check_ok(single)
        yield {
            'tmp': tmp,
            'val': val,
            'categories': categories,
            'checkpoint': checkpoint,
            'training': training,
            'experiment': REPO / 'experiments' / name,
            'reference': REPO / 'results' / reference,
        }
    finally:
        remove_outputs(REPO, name)
        remove_outputs(REPO, reference)


@pytest.mark.slow
def test_two_ranks_validate_during_training_as_one_process_does(ddp_training):
    teed = ddp_training['training'].stderr
    assert not re.search(r'^\[rank1\]:.*Validation', teed, re.M)  # only rank 0 logs
    log = re.sub(r'^\[rank\d\]:', '', teed, flags=re.M)
    assert 'World size (gpu number): 2' in log
    assert 'End of training' in log
    experiment = ddp_training['experiment']
    reference = metric_rows(ddp_training['reference'] / 'metrics_tiny_val.csv')
    for it in (VAL_FREQ, TOTAL_ITER):  # validation passed twice while training, each time on every image
        assert re.search(rf'Validation tiny_val\n\t # psnr: [\d.]+\tBest: [\d.]+ @ {it} iter', log), log[-3000:]
        for index in range(VAL_IMAGES):
            assert (experiment / 'visualization' / f'{index:03d}' / f'{index:03d}_{it}.png').is_file()
    rows = metric_rows(experiment / 'metrics' / f'metrics_tiny_val_{TOTAL_ITER}.csv')
    assert_same_metrics(rows, reference)  # the EMA weights, validated by 2 ranks = tested by one process
    logged = re.findall(rf'# psnr: ([\d.]+)\tBest: [\d.]+ @ {TOTAL_ITER} iter', log)[-1]
    assert float(logged) == pytest.approx(np.mean([float(r['psnr']) for r in rows.values()]), abs=1e-4)
    # not vacuous: EMA and plain weights differ, and validation at 2 saw other weights than at 4
    checkpoint = torch.load(ddp_training['checkpoint'], map_location='cpu', weights_only=True)
    assert max((checkpoint['params'][k] - checkpoint['params_ema'][k]).abs().max() for k in checkpoint['params']) > 1e-5
    earlier = metric_rows(experiment / 'metrics' / f'metrics_tiny_val_{VAL_FREQ}.csv')
    assert earlier['000']['psnr'] != rows['000']['psnr']


@pytest.mark.slow
def test_distributed_test_entry_writes_what_one_process_writes(ddp_training, new_name):
    name = new_name('ddp_test')
    opt = options_for_testing(name, ddp_training['val'], ddp_training['checkpoint'], ddp_training['categories'])
    opt['val']['suffix'] = 'out'
    check_ok(torchrun_two_ranks(TEST_ENTRY, write_yaml(ddp_training['tmp'] / 'dist_test.yml', opt)))
    results, reference = REPO / 'results' / name, ddp_training['reference']
    assert_same_metrics(metric_rows(results / 'metrics_tiny_val.csv'), metric_rows(reference / 'metrics_tiny_val.csv'))
    assert (results / 'metrics_tiny_val.csv').read_text() == (reference / 'metrics_tiny_val.csv').read_text()
    _, summary = read_csv(results / 'metrics_tiny_val_summary.csv')
    assert read_csv(reference / 'metrics_tiny_val_summary.csv')[1] == summary
    assert [row['group'] for row in summary] == ['combined', 'indoor', 'outdoor']
    for index in range(VAL_IMAGES):
        image = results / 'visualization' / 'tiny_val' / f'{index:03d}_out.png'
        expected = reference / 'visualization' / 'tiny_val' / f'{index:03d}_{reference.name}.png'
        assert image.read_bytes() == expected.read_bytes()


@pytest.mark.slow
def test_two_nodes_of_one_process_train_and_validate(tmp_path, new_name):
    name = new_name('two_nodes')
    data, val = make_data(tmp_path / 'train', 2), make_data(tmp_path / 'val', VAL_IMAGES, seed=5)
    yml = write_yaml(tmp_path / 'nodes.yml', options_with_validation(name, data, val, total_iter=VAL_FREQ))
    port = free_port()
    nodes = []
    for node_rank in (1, 0):
        cmd = [*torchrun(), '--nnodes=2', f'--node_rank={node_rank}', '--nproc_per_node=1', '--master_addr=127.0.0.1']
        cmd += [f'--master_port={port}', *TEE, TRAIN_ENTRY, '-opt', yml, '--launcher', 'pytorch']
        log = open(tmp_path / f'node{node_rank}.log', 'w')  # closed below
        nodes.append((subprocess.Popen([str(c) for c in cmd], cwd=REPO, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for proc, _ in nodes:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc, log in nodes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    logs = {node: (tmp_path / f'node{node}.log').read_text() for node in (0, 1)}
    assert [proc.returncode for proc, _ in nodes] == [0, 0], logs
    assert 'World size (gpu number): 2' in logs[0]
    assert '[rank0]:' in logs[0] and '[rank0]:' not in logs[1]  # global rank 0 ran on node 0 and wrote the log
    experiment = REPO / 'experiments' / name
    _, rows = read_csv(experiment / 'metrics' / f'metrics_tiny_val_{VAL_FREQ}.csv')
    assert [row['image'] for row in rows] == [f'{i:03d}' for i in range(VAL_IMAGES)]
    assert (experiment / 'models' / f'net_g_{VAL_FREQ}.pth').is_file()


@pytest.mark.slow
def test_bad_validation_images_stop_every_rank_naming_the_files(tmp_path, new_name):
    """In the first round, rank 0 meets an unreadable target and rank 1 views of different sizes: each rank fails
    with both files named, the other rank's too, instead of waiting for a collective timeout."""
    data, val = make_data(tmp_path / 'train', 2), make_data(tmp_path / 'val', VAL_IMAGES, seed=5)
    unreadable = val / 'target' / '000.png'  # rank 0's first image
    unreadable.write_bytes(b'not a png')
    wrong_size = val / 'inputR' / '001.png'  # rank 1's first image
    make_data(tmp_path / 'big', 2, height=48, seed=6)
    shutil.copy(tmp_path / 'big' / 'inputR' / '001.png', wrong_size)
    opt = options_with_validation(new_name('bad_val'), data, val, total_iter=VAL_FREQ)
    result = torchrun_two_ranks(TRAIN_ENTRY, write_yaml(tmp_path / 'bad.yml', opt))
    assert result.returncode != 0
    for rank in (0, 1):
        lines = result.stderr.splitlines()
        errors = [line for line in lines if line.startswith(f'[rank{rank}]:') and 'EvaluationError: ' in line]
        assert errors, result.stderr[-4000:]
        assert 'stopped on all 2 ranks' in errors[-1]
        assert f'rank 0: ValueError: {unreadable}: cannot be decoded as an image' in errors[-1]
        assert 'rank 1: ValueError: views differ in size' in errors[-1] and str(wrong_size) in errors[-1]


@pytest.mark.slow
def test_toolbox_train_script_resumes_on_cpu_from_another_directory_after_sigkill(tmp_path):
    toolbox = basicsr_toolbox(tmp_path / 'toolbox')
    script = toolbox / 'basicsr' / 'train.py'
    data = make_data(tmp_path / 'data', 2)
    name = unique_name('toolbox_resume')
    experiment = toolbox / 'experiments' / name
    long_yml = write_yaml(tmp_path / 'long.yml', train_options(name, data, total_iter=100000, save_freq=2))
    last = train_until_a_state_then_sigkill([PYTHON, script, '-opt', long_yml], toolbox, experiment, tmp_path / 'k.log')
    # a newer pair whose state was cut short: auto-resume must skip it, say so, and take the intact one
    torn = experiment / 'training_states' / f'{last + 10}.state'
    torn.write_bytes((experiment / 'training_states' / f'{last}.state').read_bytes()[:100])
    shutil.copy(experiment / 'models' / f'net_g_{last}.pth', experiment / 'models' / f'net_g_{last + 10}.pth')

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    short_yml = write_yaml(tmp_path / 'short.yml', train_options(name, data, total_iter=last + 2, save_freq=2))
    result = run([PYTHON, script, '-opt', short_yml, '--auto_resume'], elsewhere, {'CUDA_VISIBLE_DEVICES': ''})
    check_ok(result)
    assert re.search(rf'--auto_resume skips iteration {last + 10}: {re.escape(str(torn))}', result.stderr)
    assert re.search(rf'Resuming training from epoch: \d+, iter: {last}\.', result.stderr), result.stderr[-3000:]
    assert re.search(rf'iter:\s+{last + 1},', result.stderr) and not re.search(r'iter:\s+1,', result.stderr)
    assert (experiment / 'models' / f'net_g_{last + 2}.pth').is_file()
    assert list((toolbox / 'experiments').glob(f'{name}_archived_*')) == []
    assert not (elsewhere / 'experiments').exists()


# ---------------------------------------------------------------------------------------------------------------
# leaving the process group: every rank waits for the others, then destroys it (torchrun sees no SIGABRT)


class RecordedAtexit:
    """Stands in for the ``atexit`` module in compat: records what is registered instead of running it at exit."""

    def __init__(self):
        self.handlers = []

    def register(self, handler):
        self.handlers.append(handler)

    def unregister(self, handler):
        self.handlers = [h for h in self.handlers if h is not handler]


def failing_pipeline(root):
    raise ValueError(f'{root}: broken')


@pytest.mark.parametrize(
    'entry, fails',
    [(entry, fails) for entry in ('plugin entry', 'toolbox script at exit') for fails in (False, True)],
)
def test_every_entry_leaves_the_process_group_after_a_barrier_unless_it_failed(tmp_path, monkeypatch, entry, fails):
    import torch.distributed as dist

    monkeypatch.setenv('LOCAL_RANK', '0')
    recorded = RecordedAtexit()
    monkeypatch.setattr(compat, 'atexit', recorded)
    barriers = []
    real_barrier = dist.barrier
    monkeypatch.setattr(dist, 'barrier', lambda *a, **k: barriers.append(1) or real_barrier(*a, **k))
    init = f'file://{tmp_path / "store"}'
    for _ in range(2):  # initialised twice in one process: still one exit handler
        compat.init_dist_pytorch_on_any_device(init_method=init, rank=0, world_size=1)
        dist.destroy_process_group()
    compat.init_dist_pytorch_on_any_device(init_method=f'{init}2', rank=0, world_size=1)
    assert recorded.handlers == [compat.leave_process_group_at_exit]
    try:
        if entry == 'plugin entry' and fails:
            with pytest.raises(ValueError, match='broken'):
                compat.run_then_leave_process_group(failing_pipeline, str(tmp_path))
        elif entry == 'plugin entry':
            assert compat.run_then_leave_process_group(str.upper, 'done') == 'DONE'
        else:
            if fails:  # what Python sets when an uncaught exception ended the script
                monkeypatch.setattr(sys, 'last_value', ValueError('broken'), raising=False)
            recorded.handlers[0]()
        assert not dist.is_initialized()
        assert barriers == ([] if fails else [1])  # a failed rank does not wait for ranks that wait for it
        recorded.handlers[0]()  # at exit after the entry left: nothing left to do
        assert len(barriers) == (0 if fails else 1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_toolbox_train_script_under_torchrun_exits_cleanly_on_every_rank(tmp_path):
    """BasicSR's own train.py never destroys its process group: the plugin does it at exit (this checkout's plugin,
    through PYTHONPATH, so the test needs no reinstall)."""
    toolbox = tmp_path / 'toolbox'
    (toolbox / 'basicsr').mkdir(parents=True)
    script = shutil.copy(Path(basicsr.__file__).parent / 'train.py', toolbox / 'basicsr' / 'train.py')
    opt = train_options(unique_name('toolbox_ddp'), make_data(tmp_path / 'data', 2), total_iter=2, save_freq=2, batch=1)
    yml = write_yaml(tmp_path / 'dist.yml', opt)
    cmd = [*torchrun(), '--nproc_per_node=2', f'--master_port={free_port()}', *TEE, script, '-opt', yml]
    result = run([*cmd, '--launcher', 'pytorch'], toolbox, {'PYTHONPATH': str(REPO)})
    check_ok(result)
    assert 'End of training' in result.stderr
    assert 'terminate called' not in result.stderr + result.stdout


# ---------------------------------------------------------------------------------------------------------------
# training states: weights_only=True, and auto-resume past a corrupt newest pair


class Payload:
    """Pickles as a call to ``Path.touch(marker)``: unpickling it with weights_only=False creates the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def save_pair(root: Path, it: int, **extra) -> Path:
    """A training state as BasicSR writes it (Adam, MultiStepLR, grad scaler) and its network file."""
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([parameter])
    parameter.grad = torch.ones(3)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[3])
    state = {
        'epoch': 0,
        'iter': it,
        'optimizers': [optimizer.state_dict()],
        'schedulers': [scheduler.state_dict()],
        'grad_scaler': torch.amp.GradScaler('cpu', enabled=False).state_dict(),
        **extra,
    }
    (root / 'training_states').mkdir(parents=True, exist_ok=True)
    (root / 'models').mkdir(exist_ok=True)
    torch.save(state, root / 'training_states' / f'{it}.state')
    torch.save({'params': {'weight': parameter.detach()}}, root / 'models' / f'net_g_{it}.pth')
    return root / 'training_states' / f'{it}.state'


def resume_options(root: Path, auto_resume: bool, resume_state: Path | None = None) -> dict:
    paths = {'training_states': str(root / 'training_states'), 'models': str(root / 'models')}
    return {'auto_resume': auto_resume, 'network_g': dict(NETWORK), 'path': {**paths, 'resume_state': resume_state}}


def test_training_state_with_a_pickled_payload_is_refused_and_not_run(tmp_path):
    marker = tmp_path / 'payload_ran'
    save_pair(tmp_path / 'proof', 2, extra=Payload(marker))  # the payload is real: a plain torch.load runs it
    torch.load(tmp_path / 'proof' / 'training_states' / '2.state', weights_only=False)
    assert marker.is_file()
    marker.unlink()

    evil = save_pair(tmp_path, 4, extra=Payload(marker))
    with pytest.raises(ValueError, match=re.escape(str(evil))):  # named on resume_state
        compat.load_resume_state_from_root(resume_options(tmp_path, auto_resume=False, resume_state=evil))
    # auto-resume: skipped with a warning, and no other state to fall back on
    with pytest.raises(RuntimeError, match=re.escape(str(evil))), pytest.warns(UserWarning, match='refused'):
        compat.load_resume_state_from_root(resume_options(tmp_path, auto_resume=True))
    assert not marker.exists()


@pytest.mark.parametrize('corrupt', ['state', 'network', 'payload'])
def test_auto_resume_falls_back_past_a_corrupt_newest_pair_with_a_warning(tmp_path, corrupt):
    save_pair(tmp_path, 2)
    newest = save_pair(tmp_path, 4, extra=Payload(tmp_path / 'payload_ran') if corrupt == 'payload' else None)
    skipped = {'network': tmp_path / 'models' / 'net_g_4.pth'}.get(corrupt, newest)
    if corrupt != 'payload':
        skipped.write_bytes(skipped.read_bytes()[:-200])  # cut short, as by a full disk
    opt = resume_options(tmp_path, auto_resume=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        state = compat.load_resume_state_from_root(opt)
    assert state['iter'] == 2
    assert opt['path']['resume_state'] == str(tmp_path / 'training_states' / '2.state')
    assert opt['path']['pretrain_network_g'] == str(tmp_path / 'models' / 'net_g_2.pth')
    messages = [str(w.message) for w in caught if 'auto_resume' in str(w.message)]
    assert len(messages) == 1 and messages[0].startswith(f'--auto_resume skips iteration 4: {skipped}'), messages
    assert not (tmp_path / 'payload_ran').exists()
