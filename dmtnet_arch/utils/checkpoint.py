"""The one home for reading network checkpoints (BasicSR's ``net_g_*.pth``: ``{'params': ..., 'params_ema': ...}``).

Every reader of weights (inference, export, figures, leaderboards, and BasicSR's ``load_network`` through compat)
goes through :func:`load_network_weights` or :func:`load_state`, so checkpoints are always loaded with
``weights_only=True`` and a bad file is named in the error. Checkpoints the plugin writes also hold ``built_with``:
the network's type, constructor options and the plugin version, checked against the network they are loaded into.
"""

import collections
import functools
import inspect
import os.path as osp
import pickle
import re
from pathlib import Path

import torch

from dmtnet_arch.version import __version__

PARAM_KEYS = ('params_ema', 'params')
# Beyond tensors and plain containers, a BasicSR training state (``<iter>.state``: epoch, iter, optimizer and
# scheduler state dicts, the grad scaler's) holds one class: the milestones of MultiStepLR and BasicSR's
# MultiStepRestartLR are a collections.Counter. torch 2.14 allows it by default (get_unsafe_globals_in_checkpoint
# reports nothing for a real state); naming it keeps older torch versions loading states with weights_only=True.
TRAINING_STATE_GLOBALS = [collections.Counter]


# Checkpoints shipped inside the package (dmtnet_arch/weights/), usable by name wherever a weights path is accepted.
BUILTIN_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / 'weights'  # dmtnet_arch/weights
BUILTIN_WEIGHTS = {'synthetic-T': 'synthetic-T.pth'}


def resolve_weights(path_or_name) -> str:
    """The file of a built-in checkpoint name (:data:`BUILTIN_WEIGHTS`), else the path itself with ``~`` expanded."""
    name = str(path_or_name)
    if name in BUILTIN_WEIGHTS:
        return str(BUILTIN_WEIGHTS_DIR / BUILTIN_WEIGHTS[name])
    return osp.expanduser(name)


def describe_weights(path_or_name) -> str:
    """'built-in synthetic-T (<file>)' for a built-in name, else the path: what log lines say ran."""
    name = str(path_or_name)
    return f'built-in {name} ({resolve_weights(name)})' if name in BUILTIN_WEIGHTS else name


def read_checkpoint(path: str, mmap: bool = False) -> dict:
    """The checkpoint at ``path`` (or of a built-in name) on the CPU, loaded with ``weights_only=True``; errors name
    the file. ``mmap`` maps the tensors instead of reading them, for a look at the record before the real load
    (files in torch's legacy format, which cannot be mapped, are read)."""
    path = resolve_weights(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: checkpoint not found')
    if osp.getsize(path) == 0:
        raise ValueError(f'{path}: checkpoint file is empty')
    try:
        try:
            checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # truncated zip, pickled code, not a torch file: all the same to the user
        raise ValueError(f'{path}: cannot read the checkpoint ({type(error).__name__}: {error})') from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: not a state dict or BasicSR checkpoint (holds a {type(checkpoint).__name__})')
    return checkpoint


def network_state(checkpoint: dict, path: str, param_key: str | None = None) -> tuple[str | None, dict]:
    """``(key, state dict)``: ``param_key`` if given, else ``params_ema`` when present, else ``params``; a bare state
    dict (no such key, tensors at the top) gives ``(None, checkpoint)``. ``module.`` prefixes are removed."""
    if param_key is not None and param_key not in checkpoint:
        raise KeyError(f'{path}: no {param_key!r} in the checkpoint (keys: {list(checkpoint)})')
    key = param_key or next((k for k in PARAM_KEYS if k in checkpoint), None)
    if key is None and not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise KeyError(f'{path}: no params_ema or params in the checkpoint (keys: {list(checkpoint)})')
    state = checkpoint if key is None else checkpoint[key]
    return key, {k.removeprefix('module.'): v for k, v in state.items()}


def load_network_weights(
    net: torch.nn.Module, path: str, param_key: str | None = None, strict: bool = True, network_opt: dict | None = None
) -> str:
    """Load ``path`` into ``net`` (see :func:`network_state`) and return the key the weights came from. The
    checkpoint's record of what built it must match ``net`` (its ``build_options``, or ``network_opt``)."""
    checkpoint = read_checkpoint(path)
    key, state = network_state(checkpoint, path, param_key)
    load_state(net, state, path, checkpoint_record(checkpoint, path), network_opt, strict)
    return key or 'state dict'


def read_training_state(path: str) -> dict:
    """A BasicSR training state (``<iter>.state``) on the CPU, loaded with ``weights_only=True``: a pickled payload
    is refused, never run. Errors name the file."""
    try:
        with torch.serialization.safe_globals(TRAINING_STATE_GLOBALS):
            state = read_checkpoint(path)
    except ValueError as error:
        refused = re.search(r'Unsupported global: GLOBAL (\S+)', str(error.__cause__))
        if isinstance(error.__cause__, pickle.UnpicklingError) and refused:
            raise ValueError(
                f'{path}: refused: it holds a pickled {refused.group(1)}, which a training state never holds '
                '(loading it could run code); it was not loaded'
            ) from error
        raise
    if not isinstance(state.get('iter'), int) or 'optimizers' not in state:
        raise ValueError(f'{path}: not a BasicSR training state (keys: {list(state)})')
    return state


# ----------------------------------------------------------------------------------------------------------------
# What built a checkpoint: saved beside the weights, checked when they are loaded (docs/errors.md)

RECORD_KEY = 'built_with'
PLAIN_VALUES = (type(None), bool, int, float, str)


def checkpoint_record(checkpoint: dict, path: str) -> dict | None:
    """The checkpoint's ``built_with`` record, None when it has none; one that is not ``{'type': str, 'options':
    dict, ...}`` (edited by hand, written by another tool) is an error naming the file."""
    record = checkpoint.get(RECORD_KEY)
    if record is None:
        return None
    if not (
        isinstance(record, dict) and isinstance(record.get('type'), str) and isinstance(record.get('options'), dict)
    ):
        raise ValueError(
            f"{path}: malformed {RECORD_KEY} record {record!r:.200}: expected {{'type': <network name>, 'options': "
            f'{{...}}}}. Remove the {RECORD_KEY} entry to load the file unchecked, or re-save it with this plugin.'
        )
    return record


def plain_value(value):
    """``value`` when an option file could write it (tuples become lists), else None: only such values are kept."""
    if isinstance(value, list | tuple):
        items = [plain_value(item) for item in value]
        return items if all(item is not None or raw is None for item, raw in zip(items, value, strict=True)) else None
    return value if isinstance(value, PLAIN_VALUES) else None


def constructor_options(cls, args: tuple = (), kwargs: dict | None = None) -> dict:
    """Every constructor argument of ``cls`` (defaults filled in) that an option file could write."""
    bound = inspect.signature(cls.__init__).bind(None, *args, **(kwargs or {}))
    bound.apply_defaults()
    arguments = list(bound.arguments.items())[1:]  # self
    parameters = inspect.signature(cls.__init__).parameters
    plain = {}
    for name, value in arguments:
        if parameters[name].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if plain_value(value) is not None or value is None:
            plain[name] = plain_value(value)
    return plain


def record_constructor_options(cls):
    """Make ``cls`` keep what built each instance in ``build_options`` (``{'type': name, **options}``); networks of
    this plugin get it when they are registered (dmtnet_arch/archs/__init__.py)."""
    init = cls.__init__
    if getattr(init, 'records_options', False):
        return cls

    @functools.wraps(init)
    def init_and_record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self) is cls:
            self.build_options = {'type': cls.__name__, **constructor_options(cls, args, kwargs)}

    init_and_record.records_options = True
    cls.__init__ = init_and_record
    return cls


def plugin_version() -> str:
    return __version__


def network_record(net: torch.nn.Module, network_opt: dict | None = None) -> dict | None:
    """``{'type', 'options', 'dmtnet_arch_version'}`` for a network: its ``build_options``, else its option block with
    the constructor's defaults filled in; None when neither says what built it."""
    options = getattr(net, 'build_options', None)
    if options is None and network_opt and network_opt.get('type') == type(net).__name__:
        options = {'type': network_opt['type'], **constructor_options(type(net), (), without_type(network_opt))}
    if options is None:
        return None
    return {'type': options['type'], 'options': without_type(options), 'dmtnet_arch_version': plugin_version()}


def without_type(options: dict) -> dict:
    return {key: value for key, value in options.items() if key != 'type'}


def describe_built(record: dict) -> str:
    """'DMTNet-T' for a record with a variant, else the type."""
    variant = record['options'].get('variant')
    return f'{record["type"]}-{variant}' if variant is not None else record['type']


def reconcile_options(network_opt: dict, record: dict | None, path: str, where: str = 'network_g', strict=True):
    """The options to build with: ``network_opt`` plus the checkpoint's value of every option it leaves unset (each
    logged). An option set to another value than the checkpoint's is an error naming it and both values (a warning
    with ``strict`` False, where partial loading is asked for). Returns the new options dict."""
    logger = get_logger()
    if record is None:
        return dict(network_opt)
    if network_opt.get('type') != record['type']:
        mismatch(f'{path}: the checkpoint holds a {record["type"]}, {where}: type is {network_opt.get("type")}', strict)
        return dict(network_opt)
    defaults = arch_defaults(record['type'])
    options = dict(network_opt)
    adopted = {}
    for key, saved in record['options'].items():
        if key in network_opt:
            if plain_value(network_opt[key]) != saved:
                mismatch(
                    f'{path}: {where}: {key} is {network_opt[key]!r} in the options but the checkpoint was built with '
                    f'{key}: {saved!r} (checkpoint is {describe_built(record)}). Set {key}: {saved!r} or remove the '
                    "option to use the checkpoint's value.",
                    strict,
                )
        elif defaults is not None and key not in defaults:
            logger.warning(f'{path}: the checkpoint records {key}: {saved!r}, which {record["type"]} no longer takes')
        else:
            options[key] = saved
            if defaults is None or defaults[key] != saved:
                adopted[key] = saved
    if adopted:
        listing = ', '.join(f'{key}: {value!r}' for key, value in adopted.items())
        logger.info(f'{where}: not set in the options, taken from the checkpoint {path}: {listing}')
    return options


def arch_defaults(arch_type: str) -> dict | None:
    """Default constructor options of a registered network type (None when it is not registered)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    if arch_type not in ARCH_REGISTRY:
        return None
    parameters = list(inspect.signature(ARCH_REGISTRY.get(arch_type).__init__).parameters.values())[1:]
    return {p.name: plain_value(p.default) for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def mismatch(message: str, strict: bool):
    if strict:
        raise ValueError(message)
    get_logger().warning(message + ' (loading anyway: strict_load is false)')


def check_built_alike(net: torch.nn.Module, record: dict | None, path: str, network_opt: dict | None, strict=True):
    """A network already built must have been built with the checkpoint's options: every one, defaults included."""
    if record is None:
        get_logger().info(f'{path}: no record of the options that built this checkpoint; they could not be checked')
        return
    built = network_record(net, network_opt)
    if built is None:
        return
    explicit = {'type': built['type'], **built['options']}
    explicit = {key: value for key, value in explicit.items() if key == 'type' or key in record['options']}
    reconcile_options(explicit, record, path, 'network', strict)


def describe_state(net: torch.nn.Module, state: dict) -> str:
    """What a state dict is: another registered architecture when its key names say so (a Restormer checkpoint given
    to DMTNet is 'Restormer'), else by the network class's ``describe_state_dict`` when it has one (e.g.
    'DMTNet-T')."""
    other = foreign_architecture(type(net), state)
    if other is not None:
        return other
    describe = getattr(type(net), 'describe_state_dict', None)
    if describe is not None:
        return describe(state)
    return f'{type(net).__name__} with {sum(v.numel() for v in state.values())} values'


def key_pattern(key: str) -> str:
    """A state-dict key with its module indices replaced: 'stages.3.rgm.0.weight' -> 'stages.#.rgm.#.weight'."""
    return re.sub(r'\.\d+(?=\.|$)', '.#', key)


@functools.cache
def architecture_key_patterns() -> dict[str, frozenset]:
    """Key patterns of each network this plugin registers, built with its defaults on the meta device (no memory)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    patterns = {}
    for name, arch in ARCH_REGISTRY:
        if not arch.__module__.startswith('dmtnet_arch.archs.'):
            continue
        try:
            with torch.device('meta'):
                keys = arch().state_dict()
        except Exception:  # a network without usable defaults is not identified
            continue
        patterns[name] = frozenset(key_pattern(key) for key in keys)
    return patterns


def foreign_architecture(own: type, state: dict, share: float = 0.5) -> str | None:
    """What a state dict holds when fewer than ``share`` of its key patterns belong to ``own`` (a registered
    network): the registered architecture that at least that share belongs to, else 'no registered network' with a
    few of its keys. None when it looks like ``own``."""
    found = {key_pattern(key) for key in state}
    scores = {name: len(found & keys) / len(found) for name, keys in architecture_key_patterns().items() if found}
    if scores.get(own.__name__, 1.0) >= share:
        return None
    best = max(scores, key=scores.get)
    if scores[best] >= share:
        return best
    return f'no registered network ({len(state)} tensors, keys such as {", ".join(list(state)[:2])})'


def as_loaded(net: torch.nn.Module, state: dict) -> dict:
    """``state`` as ``load_state_dict`` will see it: renamed by a network's load-state-dict pre-hook
    (``accept_released_keys``, with which e.g. IFAN reads an official release's layout)."""
    if not hasattr(net, 'accept_released_keys'):
        return state
    state = dict(state)
    net.accept_released_keys(net, state, '')
    return state


def check_state_fits(net: torch.nn.Module, state: dict, path: str):
    """Same keys and shapes as ``net``; otherwise an error that says what each side is and a few of the differences.
    A network that reads an official release's layout through a load-state-dict pre-hook (``accept_released_keys``,
    e.g. IFAN) is compared after that hook's renaming, as ``load_state_dict`` will see it."""
    own = net.state_dict()
    state = as_loaded(net, state)
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    reshaped = [
        f'{key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}'
        for key in own
        if key in state and tuple(state[key].shape) != tuple(own[key].shape)
    ]
    if not (missing or unexpected or reshaped):
        return
    details = '; '.join(
        f'{len(items)} {label} (e.g. {", ".join(items[:3])})'
        for label, items in (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', reshaped))
        if items
    )
    raise ValueError(
        f'{path}: the checkpoint does not fit the network: checkpoint is {describe_state(net, state)}, network is '
        f'{describe_state(net, own)}. {details}'
    )


def load_state(net, state: dict, path: str, record: dict | None, network_opt: dict | None = None, strict=True):
    """Check the record and the shapes (strict) or that the load fills enough (not strict), then load ``state``."""
    check_built_alike(net, record, path, network_opt, strict)
    if strict:
        check_state_fits(net, state, path)
    else:
        check_partial_load(net, state, path, record, network_opt)
    net.load_state_dict(state, strict=strict)


# A non-strict load must fill at least this share of the network's tensors or use this share of the checkpoint's.
MIN_PARTIAL_LOAD = 0.5


def check_partial_load(net, state: dict, path: str, record: dict | None, network_opt: dict | None = None):
    """``strict_load: false`` loads the tensors whose name and shape match and silently skips the rest: with another
    architecture's checkpoint nothing loads and an untrained network runs. Refuse a load that fills less than
    :data:`MIN_PARTIAL_LOAD` of the network's tensors while using less than that share of the checkpoint's (a
    smaller variant's checkpoint into a larger network fills part of it with all of its tensors: allowed)."""
    own, state = net.state_dict(), as_loaded(net, state)
    matched = [key for key, value in own.items() if key in state and tuple(state[key].shape) == tuple(value.shape)]
    if own and state and (len(matched) >= MIN_PARTIAL_LOAD * len(own) or len(matched) >= MIN_PARTIAL_LOAD * len(state)):
        return
    built = network_record(net, network_opt)
    network_is = describe_built(built) if built else describe_state(net, own)
    checkpoint_is = describe_built(record) if record else describe_state(net, state)
    raise ValueError(
        f"{path}: strict_load is false, but only {len(matched)} of the network's {len(own)} tensors match the "
        f"checkpoint's {len(state)} in name and shape (at least {MIN_PARTIAL_LOAD:.0%} of either needed): checkpoint "
        f'is {checkpoint_is}, network is {network_is}; the rest would keep random weights. Give a checkpoint of this '
        'network, or set network_g to the network the checkpoint holds.'
    )


def build_network_from_checkpoint(network_opt: dict, path: str, param_key: str | None = None, strict: bool = True):
    """Build the network of ``network_opt`` with what it leaves unset taken from the checkpoint, and load it."""
    from basicsr.archs import build_network

    checkpoint = read_checkpoint(path)
    record = checkpoint_record(checkpoint, path)
    net = build_network(reconcile_options(network_opt, record, path, strict=strict))
    _, state = network_state(checkpoint, path, param_key)
    load_state(net, state, path, record, network_opt, strict)
    return net


def adopt_checkpoint_options(opt: dict):
    """Before a model builds its networks: each ``network_<label>`` with a ``path: pretrain_network_<label>`` takes
    the checkpoint's recorded options where it leaves them unset, and must agree with them where it sets them."""
    path_opt = opt.get('path') or {}
    for key in [key for key in opt if key.startswith('network_') and isinstance(opt[key], dict)]:
        label = key.removeprefix('network_')
        path = path_opt.get(f'pretrain_network_{label}')
        if path:
            path = path_opt[f'pretrain_network_{label}'] = resolve_weights(path)
        if path and osp.isfile(path):
            record = checkpoint_record(read_checkpoint(path, mmap=True), path)  # the record only: no full read
            strict = path_opt.get(f'strict_load_{label}', True) is not False
            opt[key].update(reconcile_options(opt[key], record, path, key, strict))


def get_logger():
    from basicsr.utils import get_root_logger

    return get_root_logger()


def package_checkpoint(source: str, destination: str, param_key: str | None = None, note: str = '') -> dict:
    """Write the network weights of a training checkpoint (``params_ema`` when present) with its ``built_with``
    record and a ``note`` saying what it was trained on, and nothing else; returns what was written."""
    from dmtnet_arch.utils.file_util import save_torch_atomically

    checkpoint = read_checkpoint(source)
    record = checkpoint_record(checkpoint, source)
    if record is None:
        raise ValueError(f'{source}: no {RECORD_KEY} record: a packaged checkpoint must say what network it holds')
    key, state = network_state(checkpoint, source, param_key)
    packaged = {'params': {k: v.contiguous() for k, v in state.items()}, RECORD_KEY: record, 'note': note or key}
    save_torch_atomically(packaged, destination)
    return packaged
