"""The one home for reading network checkpoints (BasicSR's ``net_g_*.pth``: ``{'params': ..., 'params_ema': ...}``).

Every reader of weights outside BasicSR's own ``load_network`` (inference, export, figures, leaderboards) goes
through :func:`load_network_weights`, so checkpoints are always loaded with ``weights_only=True`` and a bad file is
named in the error.
"""

import collections
import os.path as osp
import pickle
import re

import torch

PARAM_KEYS = ('params_ema', 'params')
# Beyond tensors and plain containers, a BasicSR training state (``<iter>.state``: epoch, iter, optimizer and
# scheduler state dicts, the grad scaler's) holds one class: the milestones of MultiStepLR and BasicSR's
# MultiStepRestartLR are a collections.Counter. torch 2.14 allows it by default (get_unsafe_globals_in_checkpoint
# reports nothing for a real state); naming it keeps older torch versions loading states with weights_only=True.
TRAINING_STATE_GLOBALS = [collections.Counter]


def read_checkpoint(path: str) -> dict:
    """The checkpoint at ``path`` on the CPU, loaded with ``weights_only=True``; errors name the file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: checkpoint not found')
    if osp.getsize(path) == 0:
        raise ValueError(f'{path}: checkpoint file is empty')
    try:
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


def load_network_weights(net: torch.nn.Module, path: str, param_key: str | None = None, strict: bool = True) -> str:
    """Load ``path`` into ``net`` (see :func:`network_state`) and return the key the weights came from."""
    key, state = network_state(read_checkpoint(path), path, param_key)
    net.load_state_dict(state, strict=strict)
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
