"""Deblurring one's own dual-pixel captures with a registered network in torch (``scripts/inference.py``).

Pairs are found by :func:`dmtnet_arch.data.data_util.find_input_pairs` (or given), read at their own bit
depth, run whole or in raised-cosine-blended tiles (:mod:`dmtnet_arch.utils.tile_util`; an out-of-memory image is
retried in tiles), and written at the input's bit depth and under its name: :mod:`dmtnet_arch.tools.inference_io`
does all but the network, for this backend and the onnxruntime one. A pair that cannot be read or run is reported
and skipped; the caller gets the list of failures. ``docs/inference.md`` documents the command.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from dmtnet_arch.tools.inference_io import whole_or_tiled
from dmtnet_arch.utils.checkpoint import (
    build_network_from_checkpoint,
    checkpoint_record,
    describe_weights,
    read_checkpoint,
    resolve_weights,
)
from dmtnet_arch.utils.device_util import autocast, check_amp, check_device
from dmtnet_arch.utils.options import read_option_file
from dmtnet_arch.utils.tile_util import check_tiling

logger = logging.getLogger('dmtnet_arch.tools.inference')

# Channel-count attributes: DMTNet, DPDNet and IFAN declare in_channels, Restormer its official inp_channels;
# in_nc and in_chans are common names in other registered networks.
IN_CHANNEL_NAMES = ('in_channels', 'inp_channels', 'in_nc', 'in_chans')


# ----------------------------------------------------------------------------------------------------------------
# The network


def read_options(path) -> dict:
    """An option file as a dict; a missing file or section is an error naming it."""
    options = read_option_file(path)
    if not isinstance(options.get('network_g'), dict):
        raise ValueError(f'{path}: no network_g section')
    return options


def weights_path(options: dict, weights: str | None, option_file) -> str:
    """``--weights``, else the option file's ``path: pretrain_network_g``; neither is an error, never random weights."""
    path = weights or (options.get('path') or {}).get('pretrain_network_g')
    if not path:
        raise ValueError(
            f'{option_file}: no weights to deblur with: set path: pretrain_network_g in the option file or pass '
            '--weights; an untrained network would only make noise'
        )
    return str(path)


def options_from_checkpoint(weights: str) -> dict:
    """Options with the ``network_g`` a checkpoint's ``built_with`` record describes, for a run without ``-opt``."""
    record = checkpoint_record(read_checkpoint(weights, mmap=True), resolve_weights(weights))
    if record is None:
        raise ValueError(
            f'{resolve_weights(weights)}: the checkpoint does not record what network it holds (no built_with); '
            'pass -opt with its network_g'
        )
    return {'network_g': {'type': record['type']}, 'path': {'pretrain_network_g': weights}}


def input_channels(net: torch.nn.Module, network_options: dict) -> int:
    """How many input channels the network takes: 6 (left then right view) or 3 (one image), from an attribute of
    the built network or an option of ``network_g`` named in :data:`IN_CHANNEL_NAMES`."""
    for name in IN_CHANNEL_NAMES:
        value = getattr(net, name, None)
        if value is None:
            value = network_options.get(name)
        if isinstance(value, int):
            return value
    raise ValueError(
        f'{type(net).__name__}: cannot tell its input channels: it declares none of {", ".join(IN_CHANNEL_NAMES)} '
        '(give the network class an in_channels attribute: 6 for left and right views, 3 for one image)'
    )


def build_from_options(network_options: dict, weights: str, param_key: str | None = None) -> torch.nn.Module:
    """The registered network of ``network_g`` with ``weights`` (params_ema if present, else params) loaded; what
    ``network_g`` leaves unset comes from the checkpoint's record, what it sets must agree with it."""
    net = build_network_from_checkpoint(dict(network_options), weights, param_key)
    built = getattr(net, 'build_options', None) or network_options
    variant = f'-{built["variant"]}' if built.get('variant') else ''
    logger.info(
        f'{network_options["type"]}{variant}: weights from {describe_weights(weights)} '
        f'({param_key or "params_ema if saved, else params"})'
    )
    return net.eval()


PARAM_KEY_HELP = 'params or params_ema (default: params_ema when present, else params)'


def add_network_arguments(parser, opt_required: bool = True, weights_required: bool = False, many: bool = False):
    """The network arguments every script takes alike: ``-opt/--opt``, ``--weights`` (repeatable with ``many``) and
    ``--param-key``; :func:`load_network` builds what they name."""
    opt_help = 'option file with network_g (and path: pretrain_network_g)'
    parser.add_argument(
        '-opt', '--opt', required=opt_required, help=opt_help + ('' if opt_required else "; default: the checkpoint's")
    )
    weights_help = 'checkpoint file or built-in name (synthetic-T); overrides pretrain_network_g'
    if many:
        parser.add_argument('--weights', action='append', default=[], help=weights_help + '; repeatable')
    else:
        parser.add_argument('--weights', required=weights_required, help=weights_help)
    parser.add_argument('--param-key', help=PARAM_KEY_HELP)


def load_network(opt_file=None, weights: str | None = None, param_key: str | None = None) -> tuple:
    """``(network, network_g)``: the registered network that the option file's ``network_g`` (without an option
    file, the checkpoint's record) describes, in eval mode, with ``weights`` (else the option file's ``path:
    pretrain_network_g``) loaded; no weights is an error, never random weights."""
    options = read_options(opt_file) if opt_file else options_from_checkpoint(weights)
    net = build_from_options(options['network_g'], weights_path(options, weights, opt_file), param_key)
    return net, options['network_g']


# ----------------------------------------------------------------------------------------------------------------
# Running


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return check_device(name)


@dataclass
class Deblurrer:
    """A network ready to run: device, mixed precision, memory layout, compilation, tiling and OOM fallback.

    Args:
        net (torch.nn.Module): The network with its weights (moved to ``device``, eval mode).
        device (torch.device): Where it runs. Default: the CPU.
        amp (str | None): Autocast dtype, 'bf16' or 'fp16' (a GPU only); None runs float32. Default: None.
        channels_last (bool): Channels-last memory layout for the network and its inputs. Default: False.
        compile (bool | str): Run through ``torch.compile``: True for 'inductor', or a backend name ('eager' in
            tests). Default: False.
        tile (int | None): Run in ``tile`` x ``tile`` raised-cosine-blended tiles; None runs whole images and falls
            back to tiles when one does not fit in memory. Default: None.
        tile_overlap (int): Overlap of neighbouring tiles, in pixels. Default: 64.
        record_alpha (bool): Keep each call's DMSSRM scale weights (a DMTNet with DMSSRMs only). Default: False.
    """

    net: torch.nn.Module
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))
    amp: str | None = None
    channels_last: bool = False
    compile: bool | str = False  # True or a torch.compile backend name ('inductor', the default; 'eager' for tests)
    tile: int | None = None
    tile_overlap: int = 64
    record_alpha: bool = False

    def __post_init__(self):
        check_amp(self.device, self.amp, '--amp')
        if self.tile:
            check_tiling(self.tile, self.tile_overlap)
        if self.record_alpha and not getattr(self.net, 'scale_weights', None):
            raise ValueError(f'--save-alpha: {type(self.net).__name__} has no DMSSRM scale weights (scale_weights)')
        self.bare_net = self.net.to(self.device).eval()
        if self.channels_last:
            self.bare_net = self.bare_net.to(memory_format=torch.channels_last)
        backend = 'inductor' if self.compile is True else self.compile
        self.runner = torch.compile(self.bare_net, backend=backend) if self.compile else self.bare_net
        self.alphas: list[torch.Tensor] = []

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """One network call (an image or a tile); records the DMSSRMs' alpha of the call when asked."""
        if self.channels_last:
            lq = lq.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            out = self.runner(lq)
        if self.record_alpha:
            self.alphas.append(torch.stack([a.float().cpu() for a in self.bare_net.scale_weights], dim=1))
        return out.float()

    @torch.inference_mode()
    def __call__(self, lq, name: str = 'image') -> torch.Tensor:
        """The output for ``lq`` (N, C, H, W, torch or numpy): tiled when asked, or when the whole image does not
        fit in memory."""
        self.alphas = []
        lq = (torch.from_numpy(lq) if isinstance(lq, np.ndarray) else lq).to(self.device)
        return whole_or_tiled(self.forward, lq, name, self.tile, self.tile_overlap, self.before_retry)

    def before_retry(self):
        """Before a retry in tiles: forget the failed call's alpha, give the GPU's cached blocks back."""
        self.alphas = []
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()

    def mean_alpha(self) -> np.ndarray:
        """(DMSSRMs, scales) alpha of the last image: the call's alpha, or the mean over its tiles."""
        return torch.cat(self.alphas).mean(dim=0).numpy()
