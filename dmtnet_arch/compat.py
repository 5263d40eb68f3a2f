"""Every fix this plugin makes to BasicSR 1.4.2's behaviour on current PyTorch lives here.

Each fix says what is broken and has a test that fails without it. Two scopes (docs/training.md): fixes of model
behaviour are methods of :class:`PluginModelFixes`, a base of the plugin's own models only, so other BasicSR models
in the environment keep BasicSR's behaviour; what BasicSR needs to import, launch and resume through its own
scripts is patched globally, and those patches act on the plugin's option files and datasets only.
:func:`apply` runs before basicsr's code (the start-up hook and ``dmtnet_arch/__init__.py`` call it);
:func:`patch_basicsr` runs once basicsr is imported. Both are idempotent. This module imports nothing from
basicsr at module level, so the start-up hook can load it before basicsr exists.
"""

import atexit
import os
import os.path as osp
import sys
import types
import warnings


def provide_torchvision_functional_tensor():
    """Broken: ``basicsr/data/degradations.py`` imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17, so ``import basicsr`` fails. The one function it takes, ``rgb_to_grayscale``, lives in
    ``torchvision.transforms.functional``; expose it under the old module name."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        __import__(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional

    shim = types.ModuleType(name)
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[name] = shim


def accept_dashed_local_rank(argv: list[str]):
    """Broken: ``python -m torch.distributed.launch`` on torch 2.x passes ``--local-rank=N``; BasicSR's parser only
    knows ``--local_rank`` and exits with "unrecognized arguments". Rewrite the spelling in ``argv``."""
    for i, arg in enumerate(argv):
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            argv[i] = '--local_rank' + arg[len('--local-rank') :]


def init_dist_pytorch_on_any_device(backend='nccl', **kwargs):
    """Broken: ``--launcher pytorch`` hard-codes NCCL and takes ``RANK % torch.cuda.device_count()``, which divides
    by zero on a CPU-only machine and picks the wrong GPU on every node but the first. Use gloo without GPUs and
    LOCAL_RANK (set by torchrun and torch.distributed.launch) for the device."""
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', os.environ['RANK']))
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    else:
        backend = 'gloo'
    dist.init_process_group(backend=backend, **kwargs)
    atexit.unregister(leave_process_group_at_exit)  # once, however often a process initialises
    atexit.register(leave_process_group_at_exit)


def leave_process_group(failed: bool = False):
    """Broken: BasicSR's pipelines never destroy the process group they create, so each rank tears it down during
    interpreter shutdown while its threads may still run; under load torchrun then sees "terminate called without
    an active exception" and SIGABRT after "End of training", and reports a finished run as failed. Wait for every
    rank (unless this one failed: the others would wait for it forever), then destroy the group. A no-op without
    one."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if not failed:
        dist.barrier()
    dist.destroy_process_group()


def leave_process_group_at_exit():
    """:func:`leave_process_group` at interpreter exit, for entries that do not call it themselves (the toolbox's
    own ``basicsr/train.py``). Python sets ``sys.last_value`` when an uncaught exception ended the script."""
    leave_process_group(failed=getattr(sys, 'last_value', None) is not None)


def run_then_leave_process_group(pipeline, *args):
    """``pipeline(*args)``, then :func:`leave_process_group`; used by the plugin's entries."""
    try:
        result = pipeline(*args)
    except BaseException:
        leave_process_group(failed=True)
        raise
    leave_process_group()
    return result


def resume_network_labels(opt: dict) -> list[str]:
    """``net_<x>`` for every ``network_<x>`` that BasicSR's ``check_resume`` loads with a training state."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [f'net_{key[len("network_") :]}' for key in opt if key.startswith('network_') and key not in ignored]


def complete_states(states_dir: str, models_dir: str, net_labels=('net_g',)) -> list[str]:
    """Every ``<iter>.state`` whose ``<label>_<iter>.pth`` all exist, newest first (temporary files are ignored)."""
    if not osp.isdir(states_dir):
        return []
    iters = sorted(
        (
            int(name[: -len('.state')])
            for name in os.listdir(states_dir)
            if name.endswith('.state') and name[: -len('.state')].isdigit()
        ),
        reverse=True,
    )
    return [
        osp.join(states_dir, f'{it}.state')
        for it in iters
        if all(osp.isfile(osp.join(models_dir, f'{label}_{it}.pth')) for label in net_labels)
    ]


def newest_loadable_state(states_dir: str, models_dir: str, net_labels=('net_g',)) -> tuple[str, dict] | None:
    """``(path, state)`` of the newest complete state that loads and whose networks load; each newer one is skipped
    with a warning naming the file and why. States that exist but none loads are an error: starting afresh would
    archive the experiment."""
    from dmtnet_arch.utils.checkpoint import network_state, read_checkpoint, read_training_state

    skipped = []
    for state_path in complete_states(states_dir, models_dir, net_labels):
        it = osp.basename(state_path)[: -len('.state')]
        try:
            state = read_training_state(state_path)
            for label in net_labels:
                net_path = osp.join(models_dir, f'{label}_{it}.pth')
                network_state(read_checkpoint(net_path), net_path, 'params')
        except (OSError, ValueError, KeyError) as error:
            skipped.append(str(error))
            warnings.warn(f'--auto_resume skips iteration {it}: {error}', stacklevel=2)
            continue
        return state_path, state
    if skipped:
        raise RuntimeError(f'--auto_resume: no training state in {states_dir} can be resumed: ' + '; '.join(skipped))
    return None


def load_resume_state_from_root(opt: dict):
    """Broken: ``basicsr.train.load_resume_state`` (1) calls ``torch.cuda.current_device()``, so resuming fails on
    CPU; (2) with ``--auto_resume`` looks in ``experiments/<name>`` relative to the working directory while saves
    go under root_path, so from another directory it finds nothing and archives the experiment it should resume;
    (3) loads with ``weights_only=False``, so a state file carrying a pickled payload runs it; (4) takes the newest
    ``.state`` even when it or its network file is truncated, and fails although an older pair is intact.
    Look under ``opt['path']`` (root-based), take the newest complete pair that loads (warning about each one
    skipped), load with ``weights_only=True`` on the CPU: the optimizers move their states to the parameters."""
    from basicsr.utils import check_resume

    from dmtnet_arch.utils.checkpoint import read_training_state
    from dmtnet_arch.utils.options import uses_plugin

    found = None
    if opt['auto_resume']:
        paths = opt['path']
        found = newest_loadable_state(paths['training_states'], paths['models'], resume_network_labels(opt))
    if found is None and opt['path'].get('resume_state'):
        found = opt['path']['resume_state'], read_training_state(opt['path']['resume_state'])
    if found is None:
        return None
    opt['path']['resume_state'], resume_state = found
    plugin_run = uses_plugin(opt)  # the run checks and the resumed position are for this plugin's runs only
    if plugin_run:
        check_resuming_this_run(opt, resume_state, opt['path']['resume_state'])
    check_resume(opt, resume_state['iter'])
    if not plugin_run:
        return resume_state
    generators = resume_state.get('rng_states') or []
    rank = opt.get('rank', 0)
    PENDING_RESUME.clear()
    PENDING_RESUME.update(
        epoch=resume_state['epoch'],
        iter=resume_state['iter'],
        rng=generators[rank] if len(generators) == opt.get('world_size', 1) else None,
    )
    return resume_state


# Dataset options that choose the training data: a resumed run must read the same data.
RUN_DATA_KEYS = (
    'dataroot_lqL',
    'dataroot_lqR',
    'dataroot_gt',
    'dataroot_lqC',
    'dataroot_dpdd',
    'split',
    'meta_info_file',
    'filename_tmpl',
)


def run_options(opt: dict) -> dict:
    """What defines a training run, saved in each of its training states and compared when it resumes: its network
    blocks, the options that choose its training data (paths made absolute) and its optimizer and scheduler types.
    ``total_iter`` and the scheduler's periods may change on resume (:func:`keep_yaml_schedule_on_resume`)."""
    train_set = (opt.get('datasets') or {}).get('train') or {}
    data = {
        key: osp.abspath(osp.expanduser(value)) if key.startswith('dataroot') or key == 'meta_info_file' else value
        for key in RUN_DATA_KEYS
        if isinstance((value := train_set.get(key)), str | int)
    }
    data['io_backend'] = (train_set.get('io_backend') or {}).get('type', 'disk')
    train = opt.get('train') or {}
    networks = {
        key: dict(value) for key, value in opt.items() if key.startswith('network_') and isinstance(value, dict)
    }
    schedule = {
        key: value.get('type')
        for key, value in train.items()
        if (key.startswith('optim_') or key == 'scheduler') and isinstance(value, dict)
    }
    return {'network': networks, 'data': data, 'schedule': schedule}


def run_differences(recorded: dict, current: dict) -> list[str]:
    """``part: option recorded -> current`` for each difference. A network option set on one side only is not one:
    the checkpoint's record settles it when the networks are built (dmtnet_arch/utils/checkpoint.py)."""
    differences = []
    for part in ('network', 'data', 'schedule'):
        old, new = recorded.get(part) or {}, current.get(part) or {}
        for name in sorted(set(old) | set(new)):
            before, after = old.get(name), new.get(name)
            if part == 'network' and isinstance(before, dict) and isinstance(after, dict):
                differences += [
                    f'{name}: {key} {before[key]!r} -> {after[key]!r}'
                    for key in sorted(set(before) & set(after))
                    if before[key] != after[key]
                ]
            elif before != after:
                differences.append(f'{part}: {name} {before!r} -> {after!r}')
    return differences


def check_resuming_this_run(opt: dict, state: dict, state_path: str):
    """Resuming continues this experiment's own run. A ``resume_state`` of another experiment is refused: BasicSR
    would load this experiment's ``net_g_<iter>.pth`` with the other run's optimizer and write over this one's
    checkpoints. A state of a run whose network, training data or optimizer and scheduler types differ from the
    option file's (another experiment under the same ``name`` with ``--auto_resume``) is refused, naming each
    difference. States saved before the record existed are resumed with a warning."""
    from basicsr.utils import get_root_logger

    own = osp.realpath(opt['path']['training_states'])
    if osp.realpath(osp.dirname(state_path)) != own:
        other = osp.join(osp.dirname(osp.dirname(osp.abspath(state_path))), 'models', f'net_g_{state["iter"]}.pth')
        raise ValueError(
            f'path: resume_state {state_path} is not a state of this experiment ({own}): BasicSR would load this '
            "experiment's networks with another run's optimizer and write over this experiment's checkpoints. To "
            f'continue that run, use its own option file; to start from its weights, set path: pretrain_network_g to '
            f'{other} instead.'
        )
    recorded = state.get('run_options')
    if recorded is None:
        get_root_logger().warning(f'{state_path}: no record of the run options; whether they changed is not checked')
        return
    differences = run_differences(recorded, run_options(opt))
    if differences:
        how = '--auto_resume found' if opt.get('auto_resume') else 'path: resume_state is'
        raise ValueError(
            f'{how} {state_path}, a state of a run with other options ({"; ".join(differences)}): resuming would '
            f'continue that run under this option file. Give this run another name, or move '
            f'{osp.dirname(own)} away to start afresh; or resume with the options it was trained with.'
        )


def fix_resume_of_basicsr_train_script(parse_options, basicsr_load_resume_state):
    """Broken: the toolbox's own ``basicsr/train.py`` run as a script calls the ``load_resume_state`` it defines in
    ``__main__``, not ``basicsr.train``'s, so the fix above misses it (resuming needs a GPU and the toolbox root as
    working directory). That function is defined after the script's imports, so the start-up hook cannot replace
    it then; its ``train_pipeline`` calls ``parse_options`` first, when it is defined. Wrap ``parse_options`` to
    swap ``__main__.load_resume_state`` for :func:`load_resume_state_from_root` when it is BasicSR's own code."""

    def is_basicsr_load_resume_state(function) -> bool:
        code, own = getattr(function, '__code__', None), basicsr_load_resume_state.__code__
        return code is not None and (code.co_code, code.co_names) == (own.co_code, own.co_names)

    def parse_options_fixing_the_script(*args, **kwargs):
        main = sys.modules.get('__main__')
        if is_basicsr_load_resume_state(getattr(main, 'load_resume_state', None)):
            main.load_resume_state = load_resume_state_from_root
        return parse_options(*args, **kwargs)

    parse_options_fixing_the_script.fixes_script_resume = True
    return parse_options_fixing_the_script


def restore_yaml_schedule(model):
    """Broken: ``BaseModel.resume_training`` restores each scheduler's saved state, periods included, so raising
    ``total_iter`` (and the periods) in the YAML and resuming crashes CosineAnnealingRestartLR with
    "list indices must be integers or slices, not NoneType" once the old periods run out. After loading, put the
    YAML's periods, restart weights and eta_min back: the option file decides the schedule, the state the position."""
    scheduler_opt = model.opt.get('train', {}).get('scheduler', {})
    for scheduler in model.schedulers:
        if hasattr(scheduler, 'cumulative_period') and 'periods' in scheduler_opt:
            scheduler.periods = list(scheduler_opt['periods'])
            scheduler.restart_weights = list(scheduler_opt.get('restart_weights', [1] * len(scheduler.periods)))
            scheduler.eta_min = scheduler_opt.get('eta_min', scheduler.eta_min)
            scheduler.cumulative_period = [sum(scheduler.periods[: i + 1]) for i in range(len(scheduler.periods))]


def atomic_torch_save(obj, path: str):
    """torch.save to a temporary name beside ``path``, then rename: a kill leaves the old file or the new one."""
    from dmtnet_arch.utils.file_util import save_torch_atomically  # not at module level: loaded before basicsr exists

    save_torch_atomically(obj, path)


def save_network_atomically(self, net, net_label, current_iter, param_key='params'):
    """Broken: ``BaseModel.save_network`` writes the checkpoint in place, so a kill mid-write leaves a truncated
    ``net_g_<iter>.pth`` that resuming then fails on. Same content, written by :func:`atomic_torch_save`, by rank 0;
    plus ``built_with``, what built the network (checked on load, dmtnet_arch/utils/checkpoint.py)."""
    from dmtnet_arch.utils.checkpoint import RECORD_KEY, network_record

    if self.opt.get('rank', 0) != 0:
        return
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    save_dict = {}
    for net_, key in zip(nets, keys, strict=True):
        state = self.get_bare_model(net_).state_dict()
        save_dict[key] = {k.removeprefix('module.'): v.cpu() for k, v in state.items()}
    record = network_record(self.get_bare_model(nets[0]), self.opt.get(f'network_{net_label.removeprefix("net_")}'))
    if record is not None:
        save_dict[RECORD_KEY] = record
    iter_label = 'latest' if current_iter == -1 else current_iter
    os.makedirs(self.opt['path']['models'], exist_ok=True)
    atomic_torch_save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{iter_label}.pth'))


def save_training_state_atomically(self, epoch, current_iter):
    """Broken: ``BaseModel.save_training_state`` writes in place (a kill leaves a truncated ``.state``). Same content,
    plus the model's ``extra_training_state()`` when it has one, the run's options and every rank's random number
    generators, written atomically by rank 0. BasicSR saves it after the networks, so a complete state always has
    its network files."""
    if current_iter == -1:
        return
    generators = rng_states_of_every_rank()  # a collective: every rank takes part
    if self.opt.get('rank', 0) != 0:
        return
    state = {
        'epoch': epoch,
        'iter': current_iter,
        'optimizers': [o.state_dict() for o in self.optimizers],
        'schedulers': [s.state_dict() for s in self.schedulers],
    }
    if hasattr(self, 'extra_training_state'):
        state.update(self.extra_training_state())
    # compared when the run resumes (check_resuming_this_run); taken before BasicSR popped the optimizer's type
    state['run_options'] = getattr(self, 'defining_run_options', None) or run_options(self.opt)
    state['rng_states'] = generators  # restored on resume (resume_where_the_run_stopped)
    os.makedirs(self.opt['path']['training_states'], exist_ok=True)
    atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def rng_states() -> dict:
    """This process's random number generators (Python, NumPy, torch, CUDA) in types ``weights_only`` loads."""
    import random

    import numpy as np
    import torch

    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        'python': random.getstate(),
        'numpy': (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict):
    import random

    import numpy as np
    import torch

    random.setstate(states['python'])
    kind, keys, position, has_gauss, gauss = states['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available() and len(states['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states['cuda'])


def rng_states_of_every_rank() -> list[dict]:
    """Each rank's :func:`rng_states`, gathered on rank 0 (empty elsewhere); every rank must call it."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [rng_states()]
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(rng_states(), gathered, dst=0)
    return gathered or []


# The position a resumed run continues from, set by load_resume_state_from_root, used once by the prefetcher.
PENDING_RESUME = {}


def resume_where_the_run_stopped(reset):
    """Broken: a resumed BasicSR run restarts the epoch it saved in from its first batch (the batches it had already
    trained on are seen twice) and with the random generators of a fresh start (other crops and flips), so it does
    not train as the uninterrupted run would. On the first ``CPUPrefetcher.reset`` after resuming: skip, in the
    sampler, the batches of the epoch already trained on, then restore this rank's saved generators. With
    ``num_worker_per_gpu: 0`` the resumed run then trains exactly as the uninterrupted one; data-loader workers
    re-seed themselves every epoch, so with workers the batches are the same but their crops are not."""

    def reset_and_resume(self):
        pending = dict(PENDING_RESUME)
        PENDING_RESUME.clear()
        sampler = getattr(self.ori_loader, 'sampler', None)
        if pending and hasattr(sampler, 'num_replicas'):
            done = pending['iter'] - pending['epoch'] * len(self.ori_loader)
            if 0 <= done <= len(self.ori_loader):
                sampler.skip_once = done * self.ori_loader.batch_size
            else:
                pending.pop('rng', None)
                warnings.warn(
                    f'resuming at iteration {pending["iter"]} of epoch {pending["epoch"]}, which does not fit '
                    f'{len(self.ori_loader)} batches per epoch (batch size or data changed?): the epoch restarts',
                    stacklevel=2,
                )
        reset(self)
        if pending.get('rng') is not None:
            set_rng_states(pending['rng'])

    reset_and_resume.resumes_position = True
    return reset_and_resume


def skip_once_after_resume(iterate):
    """``EnlargedSampler.__iter__`` without the first ``skip_once`` indices, the once it is set."""

    def iterate_skipping(self):
        skip = self.__dict__.pop('skip_once', 0)
        return iter(list(iterate(self))[skip:])

    iterate_skipping.skips_after_resume = True
    return iterate_skipping


def wrap_ddp_without_device_ids(model, net):
    """Broken: ``BaseModel.model_to_device`` wraps DDP with ``device_ids=[torch.cuda.current_device()]``, which fails
    on a CPU-only machine. Without a GPU, wrap with no device ids (gloo)."""
    from torch.nn.parallel import DistributedDataParallel

    find_unused = model.opt.get('find_unused_parameters', False)
    return DistributedDataParallel(net.to(model.device), device_ids=None, find_unused_parameters=find_unused)


def load_network_checked(self, net, load_path, strict=True, param_key='params'):
    """Broken: ``BaseModel.load_network`` reads with ``weights_only=False``, a truncated or empty file gives a raw
    torch error naming no file, a T checkpoint loaded as S prints thousands of key names without saying so, and
    nothing checks the options that built the checkpoint. Read through dmtnet_arch/utils/checkpoint.py instead: errors
    name the file, a size mismatch names the variant of each side, the checkpoint's record is checked. BasicSR's
    fallback from a missing ``params_ema`` to ``params`` and its log line are kept; a bare state dict (an official
    release such as IFAN's ``IFAN.pytorch``) loads whatever ``param_key`` says."""
    import torch
    from basicsr.utils import get_root_logger

    from dmtnet_arch.utils.checkpoint import checkpoint_record, load_state, network_state, read_checkpoint

    logger = get_root_logger()
    bare = self.get_bare_model(net)
    checkpoint = read_checkpoint(load_path)
    if param_key is not None and param_key not in checkpoint and 'params' in checkpoint:
        logger.info('Loading: params_ema does not exist, use params.')
        param_key = 'params'
    elif param_key is not None and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        param_key = None  # a bare state dict
    key, state = network_state(checkpoint, load_path, param_key)
    logger.info(f'Loading {type(bare).__name__} model from {load_path}, with param key: [{key or "state dict"}].')
    network_opt = next(
        (
            v
            for k, v in self.opt.items()
            if k.startswith('network_') and isinstance(v, dict) and v.get('type') == type(bare).__name__
        ),
        None,
    )
    load_state(bare, state, load_path, checkpoint_record(checkpoint, load_path), network_opt, strict)


def adopt_checkpoint_options_first(model, opt: dict):
    """Broken: ``BaseModel`` subclasses build their networks from the option file alone, so a checkpoint trained with
    ``input_residual: true`` (or any other structural option) loads into a network built without it and scores
    wrong with no warning. Before the networks are built, options the file leaves unset are taken from the
    checkpoint's record and options it sets must agree (dmtnet_arch/utils/checkpoint.py)."""
    from dmtnet_arch.utils.checkpoint import adopt_checkpoint_options

    adopt_checkpoint_options(opt)
    model.defining_run_options = run_options(opt)  # before setup_optimizers pops the types out of opt


class PluginModelFixes:
    """BasicSR ``BaseModel`` behaviour fixed for this plugin's models only (put first among the bases): atomic
    saves with build records and random states, checked loading, checkpoint options adopted, the YAML schedule kept
    on resume, DDP on a CPU-only machine. Other BasicSR models in the same environment keep BasicSR's behaviour."""

    def __init__(self, opt):
        adopt_checkpoint_options_first(self, opt)
        super().__init__(opt)

    save_network = save_network_atomically
    save_training_state = save_training_state_atomically
    load_network = load_network_checked

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        restore_yaml_schedule(self)

    def model_to_device(self, net):
        if self.opt['dist'] and self.device.type != 'cuda':
            return wrap_ddp_without_device_ids(self, net)
        return super().model_to_device(net)


def check_options_when_parsed(parse_options):
    """Missing in BasicSR: an unknown key (``use_hflp``) is ignored, a number YAML reads as a string (``lr: 5e-4``)
    fails later with a bare TypeError, a test run without weights scores a random network. Check the parsed options
    against what this plugin registers (dmtnet_arch/utils/options.py) before anything is built."""

    def parse_and_check(root_path, is_train=True):
        from dmtnet_arch.utils.options import check_options

        opt, args = parse_options(root_path, is_train)
        check_options(opt)
        return opt, args

    parse_and_check.checks_options = True
    return parse_and_check


def refuse_train_set_smaller_than_a_batch(build_dataloader):
    """Broken: with fewer training samples than one global batch BasicSR's loader drops the only, incomplete batch,
    every epoch is empty, and training ends at once saving an untrained network with exit 0. Refuse it, with the
    numbers. Wraps ``build_dataloader``, which both ``basicsr.train`` and a toolbox's own ``train.py`` call."""

    def build_and_check(dataset, dataset_opt, *args, **kwargs):
        from dmtnet_arch.utils.options import is_plugin_owned

        loader = build_dataloader(dataset, dataset_opt, *args, **kwargs)
        if dataset_opt['phase'] == 'train' and len(loader) == 0 and is_plugin_owned(type(dataset)):
            sampler = loader.sampler if hasattr(loader.sampler, 'num_replicas') else None
            processes = sampler.num_replicas if sampler is not None else 1
            raise ValueError(
                f'datasets: train ({dataset_opt["name"]}): {len(dataset)} training samples (x dataset_enlarge_ratio '
                f'{dataset_opt.get("dataset_enlarge_ratio", 1)}) are fewer than one global batch of '
                f'{loader.batch_size * processes} (batch size {loader.batch_size} per process x {processes} '
                'process(es)): every epoch would be empty and training would save an untrained network. Add '
                'training images or lower batch_size_per_gpu.'
            )
        return loader

    build_and_check.checks_batch = True
    return build_and_check


def apply():
    """Fixes that must be in place before basicsr's own code runs."""
    provide_torchvision_functional_tensor()
    accept_dashed_local_rank(sys.argv)


def patch_basicsr():
    """Fixes to functions of an imported basicsr, looked up by name at call time."""
    import basicsr.data
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.data.prefetch_dataloader import CPUPrefetcher
    from basicsr.utils import dist_util

    dist_util._init_dist_pytorch = init_dist_pytorch_on_any_device
    if not getattr(basicsr.utils.options.parse_options, 'fixes_script_resume', False):
        basicsr.utils.options.parse_options = fix_resume_of_basicsr_train_script(
            basicsr.utils.options.parse_options, basicsr.train.load_resume_state
        )
    basicsr.train.load_resume_state = load_resume_state_from_root
    if not getattr(CPUPrefetcher.reset, 'resumes_position', False):
        CPUPrefetcher.reset = resume_where_the_run_stopped(CPUPrefetcher.reset)
    if not getattr(EnlargedSampler.__iter__, 'skips_after_resume', False):
        EnlargedSampler.__iter__ = skip_once_after_resume(EnlargedSampler.__iter__)
    for module in (basicsr.train, basicsr.test, basicsr.utils.options):
        if not getattr(module.parse_options, 'checks_options', False):
            module.parse_options = check_options_when_parsed(module.parse_options)
    for module in (basicsr.train, basicsr.data):
        if not getattr(module.build_dataloader, 'checks_batch', False):
            module.build_dataloader = refuse_train_set_smaller_than_a_batch(module.build_dataloader)
