"""Option files checked at load time against what this plugin registers (see docs/errors.md).

:func:`check_options` runs on the dict BasicSR's ``parse_options`` returns (compat wraps it, so
``dmtnet_arch/train.py``, ``dmtnet_arch/test.py`` and the toolbox's ``basicsr/train.py``/``test.py`` all check).
It covers:

- the blocks of datasets, networks, metrics and models this plugin registers (a class or function declares its keys:
  ``option_schema`` on datasets and models, the constructor's signature for networks, losses and optimizers, the
  function's signature for metrics);
- unknown keys (an error with the closest known key), types and ranges (errors carry the option's path), numbers
  written as strings (converted in place when they parse);
- dataset names unique in the file, the GPU count against the GPUs there are, weights given when testing.
"""

import difflib
import inspect
import math
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Union, get_args, get_origin

import torch
import yaml

from dmtnet_arch.utils.checkpoint import resolve_weights
from dmtnet_arch.utils.file_util import write_bytes_atomically

# basicsr is imported where it is used: importing it runs basicsr/__init__.py, which imports every BasicSR
# subpackage and needs compat's fixes applied first; this module must stay importable before that.

PLUGIN_PACKAGE = 'dmtnet_arch'
SCALAR_TYPES = (bool, int, float, str, list, tuple, dict)
# The key that lets a test or inference run score a network that no checkpoint initialised.
ALLOW_RANDOM_WEIGHTS = 'allow_random_weights'
# path: keys BasicSR reads or writes whatever the networks are called (the per-network ones are added per label).
PATH_KEYS = (
    'resume_state',
    'ignore_resume_networks',
    'experiments_root',
    'models',
    'training_states',
    'log',
    'visualization',
    'results_root',
    ALLOW_RANDOM_WEIGHTS,
)
PER_NETWORK_PATH_KEYS = ('pretrain_network_{}', 'param_key_{}', 'strict_load_{}')


class OptionError(ValueError):
    """An option file asks for something that cannot work; the message names the option by its path."""


@dataclass(frozen=True)
class Option:
    """One key of a schema: its type (or types), whether null is allowed, a lower bound, an upper bound the value
    must stay below (``below``, excluded) or a set of choices. ``item`` is the type of a list's elements;
    ``minimum`` then bounds each element."""

    kind: type | tuple = object
    nullable: bool = True
    minimum: float | None = None
    choices: tuple | None = None
    item: type | None = None
    below: float | None = None


# BasicSR's data-loader keys (basicsr/data/__init__.py, basicsr/train.py) and the keys parse_options adds, plus the
# progressive-training keys of Restormer's official options (the team's convention, docs/training.md).
LOADER_SCHEMA = {
    'name': Option(str, nullable=False),
    'type': Option(str, nullable=False),
    'phase': Option(str),
    'scale': Option(int),
    'use_shuffle': Option(bool),
    'num_worker_per_gpu': Option(int, minimum=0),
    'batch_size_per_gpu': Option(int, minimum=1),
    'dataset_enlarge_ratio': Option((int, float), minimum=1),
    'prefetch_mode': Option(str, choices=('cpu', 'cuda')),
    'num_prefetch_queue': Option(int, minimum=1),
    'pin_memory': Option(bool),
    'persistent_workers': Option(bool),
    'mini_batch_sizes': Option(list, item=int, minimum=1),
    'iters': Option(list, item=int, minimum=1),
    'gt_sizes': Option(list, item=int, minimum=1),
}

# Schedulers BasicSR's SRModel builds, and the cyclic one of Restormer's options (the team's convention).
SCHEDULER_SCHEMAS = {
    'MultiStepLR': {'milestones': Option(list, item=int, minimum=0), 'gamma': Option(float, minimum=0)},
    'MultiStepRestartLR': {
        'milestones': Option(list, item=int, minimum=0),
        'gamma': Option(float, minimum=0),
        'restarts': Option(list, item=int, minimum=0),
        'restart_weights': Option(list, item=float, minimum=0),
    },
    'CosineAnnealingRestartLR': {
        'periods': Option(list, item=int, minimum=1),
        'restart_weights': Option(list, item=float, minimum=0),
        'eta_min': Option(float, minimum=0),
    },
    'CosineAnnealingRestartCyclicLR': {
        'periods': Option(list, item=int, minimum=1),
        'restart_weights': Option(list, item=float, minimum=0),
        'eta_mins': Option(list, item=float, minimum=0),
    },
}


# ----------------------------------------------------------------------------------------------------------------
# Keys and values


def closest_key(key: str, known) -> str:
    """' (did you mean X?)' for the most similar known key, or '' when none is close."""
    match = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f' (did you mean {match[0]}?)' if match else ''


def check_known_keys(where: str, block: dict, known):
    """Every key of ``block`` must be in ``known``; the error names the first unknown key and suggests a known one."""
    known = set(known)
    for key in block:
        if key not in known:
            raise OptionError(
                f'{where}: unknown option {key!r}{closest_key(key, known)}. Known options: {", ".join(sorted(known))}'
            )


def parse_number(text: str, kind: type):
    """``'5e-4'`` -> 5e-4, ``'64'`` -> 64 (``kind`` int takes integral values only); None when it does not parse."""
    try:
        value = float(text.strip())
    except ValueError:
        return None
    if kind is int:
        return int(value) if math.isfinite(value) and value == int(value) else None
    return value


def convert_value(where: str, value, kinds: tuple):
    """``value`` as one of ``kinds`` (numbers written as strings are parsed, integral floats become ints); an error
    naming ``where`` otherwise. ``object`` among ``kinds`` stands for types no option file can write: any value."""
    plain = tuple(kind for kind in kinds if kind is not object)
    if isinstance(value, plain) and not (isinstance(value, bool) and bool not in plain):
        return value
    if int in plain and float not in plain and isinstance(value, float) and value.is_integer():
        return int(value)
    if float in plain and isinstance(value, int) and not isinstance(value, bool):
        return value
    if (tuple in plain and isinstance(value, list)) or (list in plain and isinstance(value, tuple)):
        return value
    if isinstance(value, str):
        for kind in (int, float):
            number = parse_number(value, kind) if kind in plain else None
            if number is not None:
                return number
    if object in kinds:
        return value
    names = ' or '.join(kind.__name__ for kind in plain)
    raise OptionError(f'{where} must be {names}, got {value!r} ({type(value).__name__})')


def check_value(where: str, value, spec: Option):
    """The checked (and possibly converted) value of one option."""
    if value is None:
        if not spec.nullable:
            raise OptionError(f'{where} must be set (got null)')
        return None
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    value = convert_value(where, value, kinds)
    if spec.item is not None and isinstance(value, list | tuple):
        item_spec = Option(spec.item, nullable=False, minimum=spec.minimum, choices=spec.choices)
        return [check_value(f'{where}[{i}]', item, item_spec) for i, item in enumerate(value)]
    if spec.choices is not None and value not in spec.choices:
        raise OptionError(f'{where} must be one of {", ".join(map(str, spec.choices))}, got {value!r}')
    if not isinstance(value, int | float):
        return value
    bounds = [f'at least {spec.minimum}'] if spec.minimum is not None else []
    bounds += [f'below {spec.below}'] if spec.below is not None else []
    too_low = spec.minimum is not None and value < spec.minimum
    if too_low or (spec.below is not None and value >= spec.below):
        raise OptionError(f'{where} must be {" and ".join(bounds)}, got {value!r}')
    return value


def check_block(where: str, block: dict, schema: dict):
    """Unknown keys, then each value against its schema entry; converted values are written back into ``block``."""
    if not isinstance(block, dict):
        raise OptionError(f'{where} must be a mapping of options, got {block!r}')
    check_known_keys(where, block, schema)
    for key, spec in schema.items():
        if key in block:
            block[key] = check_value(f'{where}: {key}', block[key], spec)


# ----------------------------------------------------------------------------------------------------------------
# Schemas read from signatures


def annotation_kinds(annotation) -> tuple[tuple, bool]:
    """The plain types an annotation allows (plus ``object`` when it also allows others) and whether it allows None.
    A string annotation (``from __future__ import annotations``) is not evaluated: any value."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return (object,), True
    args = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    kinds = {get_origin(a) or a for a in args if a is not type(None)}
    plain = tuple(kind for kind in SCALAR_TYPES if kind in kinds)
    return plain + ((object,) if len(plain) < len(kinds) else ()), type(None) in args


def parameter_option(parameter: inspect.Parameter) -> Option:
    """An option from a parameter's annotation, or from its default's type when it has no annotation."""
    if parameter.annotation is not inspect.Parameter.empty and not isinstance(parameter.annotation, str):
        kinds, nullable = annotation_kinds(parameter.annotation)
        return Option(kinds, nullable=nullable or parameter.default is None)
    default = parameter.default
    if default is inspect.Parameter.empty or default is None or type(default) not in SCALAR_TYPES:
        return Option(object)
    kinds = (int, float) if type(default) is float else (type(default),)
    return Option(kinds, nullable=False)


def signature_schema(function, skip: tuple = ()) -> dict | None:
    """``{parameter: Option}`` of a function or class constructor; None when it takes ``**kwargs`` (any key)."""
    target = function.__init__ if inspect.isclass(function) else function
    parameters = list(inspect.signature(target).parameters.values())
    if inspect.isclass(function):
        parameters = parameters[1:]  # self
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {
        p.name: parameter_option(p)
        for p in parameters
        if p.name not in skip and p.kind not in (inspect.Parameter.VAR_POSITIONAL,)
    }


def get_registered(registry, kind: str, where: str, name):
    """The class or function registered as ``name``; an error naming the option and the closest name otherwise."""
    if not isinstance(name, str) or not (name in registry or f'{name}_basicsr' in registry):
        raise OptionError(f'{where}: no {kind} named {name!r} is registered{closest_key(name, registry.keys())}')
    return registry.get(name)


def is_plugin_owned(obj) -> bool:
    return getattr(obj, '__module__', '').split('.')[0] == PLUGIN_PACKAGE


# ----------------------------------------------------------------------------------------------------------------
# Sections


def check_constructor_block(where: str, block: dict, target, skip: tuple = ()):
    """A ``type:`` block whose other keys are keyword arguments of ``target`` (a network, loss or optimizer)."""
    schema = signature_schema(target, skip)
    if schema is not None:
        check_block(where, block, {'type': Option(str, nullable=False), **schema})


def check_network(where: str, block: dict, plugin_model: bool):
    from basicsr.utils.registry import ARCH_REGISTRY  # on use: see the note on basicsr imports above

    arch = get_registered(ARCH_REGISTRY, 'network', f'{where}: type', block.get('type'))
    if plugin_model or is_plugin_owned(arch):
        check_constructor_block(where, block, arch)


def check_dataset(where: str, block: dict):
    from basicsr.utils.registry import DATASET_REGISTRY  # on use: see the note on basicsr imports above

    if not isinstance(block, dict):
        raise OptionError(f'{where} must be a mapping of options, got {block!r}')
    dataset = get_registered(DATASET_REGISTRY, 'dataset', f'{where}: type', block.get('type'))
    schema = getattr(dataset, 'option_schema', None)
    if schema is not None:
        check_block(where, block, {**LOADER_SCHEMA, **schema})


def check_datasets(datasets: dict):
    """Each dataset block, and their names: two datasets of one name would write over each other's results."""
    names = {}
    for phase, block in datasets.items():
        check_dataset(f'datasets: {phase}', block)
        name = block.get('name')
        if name in names:
            raise OptionError(
                f'datasets: {phase}: name {name!r} is also the name of datasets: {names[name]}; their metrics and '
                'images would overwrite each other. Give each dataset its own name.'
            )
        names[name] = phase


def check_metric(where: str, block: dict, plugin_model: bool):
    from basicsr.utils.registry import METRIC_REGISTRY  # on use: see the note on basicsr imports above

    if not isinstance(block, dict):
        raise OptionError(f'{where} must be a mapping of options, got {block!r}')
    metric = get_registered(METRIC_REGISTRY, 'metric', f'{where}: type', block.get('type'))
    if not (plugin_model or is_plugin_owned(metric)):
        return
    parameters = inspect.signature(metric).parameters.values()
    schema = {
        p.name: parameter_option(p)
        for p in parameters
        if p.name not in ('img', 'img2') and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    for name, choices in getattr(metric, 'option_choices', {}).items():
        schema[name] = Option(schema[name].kind, nullable=False, choices=tuple(choices))
    better = Option(str, choices=('higher', 'lower'))
    check_block(where, block, {'type': Option(str, nullable=False), 'better': better, **schema})


def check_train_entry(where: str, key: str, block):
    """``optim_*`` against the torch optimizer, ``*_opt`` against the registered loss, ``scheduler`` by its type."""
    from basicsr.utils.registry import LOSS_REGISTRY  # on use: see the note on basicsr imports above

    if key.startswith('optim_'):
        optimizer = getattr(torch.optim, str(block.get('type')), None)
        if not (inspect.isclass(optimizer) and issubclass(optimizer, torch.optim.Optimizer)):
            raise OptionError(f'{where}: type: no torch optimizer named {block.get("type")!r}')
        check_constructor_block(where, block, optimizer, skip=('params',))
    elif key.endswith('_opt'):
        loss = get_registered(LOSS_REGISTRY, 'loss', f'{where}: type', block.get('type'))
        check_constructor_block(where, block, loss)
    elif key == 'scheduler' and block.get('type') in SCHEDULER_SCHEMAS:
        check_block(where, block, {'type': Option(str), **SCHEDULER_SCHEMAS[block['type']]})


def check_schedule_covers_training(train: dict):
    """The cosine schedules' ``periods`` must cover ``total_iter``: past their sum BasicSR's CosineAnnealingRestartLR
    fails with a bare TypeError (possibly days into a run) and the cyclic one holds its last floor. Its
    ``restart_weights`` need one entry per period (BasicSR asserts it without saying which)."""
    scheduler = train.get('scheduler') or {}
    kind, periods, total = scheduler.get('type'), scheduler.get('periods'), train.get('total_iter')
    if kind not in ('CosineAnnealingRestartLR', 'CosineAnnealingRestartCyclicLR') or not periods:
        return
    weights = scheduler.get('restart_weights')
    if kind == 'CosineAnnealingRestartLR' and weights is not None and len(weights) != len(periods):
        raise OptionError(
            f'train: scheduler: restart_weights has {len(weights)} entries but periods has {len(periods)}: give one '
            f'per period (periods {periods}, restart_weights {weights})'
        )
    if isinstance(total, int) and sum(periods) < total:
        after = {
            'CosineAnnealingRestartLR': f'{kind} fails with a TypeError at iteration {sum(periods) + 1}',
            'CosineAnnealingRestartCyclicLR': f'the last {total - sum(periods)} iterations would run at the floor '
            'eta_mins[-1]',
        }[kind]
        raise OptionError(
            f'train: scheduler: periods {periods} sum to {sum(periods)} iterations, fewer than train: total_iter '
            f'{total}: {after}. Make the periods sum to at least {total} (e.g. lengthen the last period by '
            f'{total - sum(periods)}).'
        )


def check_model_section(opt: dict, section: str, schema: dict):
    """``train:`` or ``val:`` of a plugin model: its own keys, and the blocks inside them."""
    block = opt.get(section)
    if block is None:
        return
    check_block(section, block, schema)
    for key, value in block.items():
        if isinstance(value, dict) and section == 'train':
            check_train_entry(f'train: {key}', key, value)


def check_metrics(opt: dict, plugin_model: bool):
    """``val: metrics:`` blocks of the plugin's metrics (of every metric with a plugin model)."""
    for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        check_metric(f'val: metrics: {name}', metric, plugin_model)


def network_labels(opt: dict) -> list:
    """``g`` for ``network_g`` and so on."""
    return [
        key.removeprefix('network_')
        for key, value in opt.items()
        if key.startswith('network_') and isinstance(value, dict)
    ]


def check_path(opt: dict, model_path_keys=()):
    """path: keys (BasicSR's, each network's, and the model's own ``path_keys``), and that a test run has weights
    for every network unless random weights are asked for."""
    path = opt.get('path') or {}
    labels = network_labels(opt)
    known = set(PATH_KEYS) | set(model_path_keys)
    known |= {key.format(label) for key in PER_NETWORK_PATH_KEYS for label in labels}
    check_known_keys('path', path, known)
    for label in labels:
        if f'strict_load_{label}' in path:
            key = f'strict_load_{label}'
            path[key] = check_value(f'path: {key}', path[key], Option(bool))
    for label in labels:  # a built-in name becomes its file before BasicSR checks or reads it
        key = f'pretrain_network_{label}'
        if path.get(key):
            path[key] = resolve_weights(path[key])
    # popped once read: BasicSR's make_exp_dirs takes every other path: value for a folder to create
    random_ok = check_value(f'path: {ALLOW_RANDOM_WEIGHTS}', path.pop(ALLOW_RANDOM_WEIGHTS, None), Option(bool))
    if opt.get('is_train', True) or random_ok:
        return
    for label in labels:
        if not path.get(f'pretrain_network_{label}'):
            raise OptionError(
                f'path: pretrain_network_{label} is not set: testing would score network_{label} with random weights. '
                f'Set path: pretrain_network_{label} to a checkpoint, or path: {ALLOW_RANDOM_WEIGHTS}: true if random '
                'weights are what you want.'
            )


def check_gpu_count(opt: dict):
    """``num_gpu`` (after BasicSR resolved ``auto``) must not ask for more GPUs than PyTorch sees."""
    requested = opt.get('num_gpu', 0)
    if requested in (None, 'auto'):
        return
    requested = check_value('num_gpu', requested, Option(int, minimum=0))
    opt['num_gpu'] = requested
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested > available:
        raise OptionError(
            f'num_gpu: {requested} but PyTorch sees {available} GPU(s) on this machine '
            f'(torch.cuda.is_available() is {torch.cuda.is_available()}). Use num_gpu: auto, or 0 for the CPU.'
        )


def read_option_file(path) -> dict:
    """An option file as a dict (YAML, BasicSR's ``!!float`` tags included); a missing file or one that is not a
    mapping is an error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: option file not found')
    with open(path) as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict):
        raise ValueError(f'{path}: not an option file (a YAML mapping)')
    return opt


def write_option_file(path, opt: dict) -> Path:
    """Write ``opt`` as a YAML option file (keys in their order), atomically; returns the path."""
    write_bytes_atomically(path, yaml.safe_dump(opt, sort_keys=False).encode())
    return Path(path)


def model_class(opt: dict):
    from basicsr.utils.registry import MODEL_REGISTRY  # on use: see the note on basicsr imports above

    return get_registered(MODEL_REGISTRY, 'model', 'model_type', opt.get('model_type'))


def uses_plugin(opt: dict) -> bool:
    """Whether an option file names a model, network, dataset or metric this plugin registers. Option files of
    other BasicSR models and plugins are left to BasicSR: installing this plugin must not change how they run."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY  # on use

    def owned(registry, name) -> bool:
        return isinstance(name, str) and name in registry and is_plugin_owned(registry.get(name))

    networks = [opt[f'network_{label}'] for label in network_labels(opt)]
    datasets = [block for block in (opt.get('datasets') or {}).values() if isinstance(block, dict)]
    metrics = [block for block in ((opt.get('val') or {}).get('metrics') or {}).values() if isinstance(block, dict)]
    return (
        owned(MODEL_REGISTRY, opt.get('model_type'))
        or any(owned(ARCH_REGISTRY, block.get('type')) for block in networks if isinstance(block, dict))
        or any(owned(DATASET_REGISTRY, block.get('type')) for block in datasets)
        or any(owned(METRIC_REGISTRY, block.get('type')) for block in metrics)
    )


def check_options(opt: dict) -> dict:
    """Check (and convert in place) an option dict as parse_options returns it; returns it. Option files that use
    nothing of this plugin are returned unchecked."""
    if not uses_plugin(opt):
        return opt
    model = model_class(opt)
    schema = getattr(model, 'option_schema', None)
    plugin_model = schema is not None
    check_gpu_count(opt)
    check_datasets(opt.get('datasets') or {})
    for label in network_labels(opt):
        check_network(f'network_{label}', opt[f'network_{label}'], plugin_model)
    check_metrics(opt, plugin_model)
    if plugin_model:
        check_path(opt, getattr(model, 'path_keys', ()))
        for section, section_schema in schema.items():
            check_model_section(opt, section, section_schema)
        check_schedule_covers_training(opt.get('train') or {})
    return opt
