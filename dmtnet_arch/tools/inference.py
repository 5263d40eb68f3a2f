"""Deblurring one's own dual-pixel captures with any registered network: ``scripts/inference.py`` calls this.

Pairs are found by :func:`dmtnet_arch.data.data_util.find_input_pairs` (or given), read at their own bit
depth, run whole or in raised-cosine-blended tiles (:mod:`dmtnet_arch.utils.tile_util`; an out-of-memory image is
retried in tiles), and written at the input's bit depth and under its name. A pair that cannot be read or run is
reported and skipped; the caller gets the list of failures. ``docs/inference.md`` documents the command.
"""

import contextlib
import errno
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from dmtnet_arch.data.data_util import (
    DualPixelSample,
    identical_views,
    pair_views_by_name,
    read_sample_views,
    scene_name,
)
from dmtnet_arch.utils.checkpoint import (
    build_network_from_checkpoint,
    checkpoint_record,
    describe_weights,
    read_checkpoint,
    resolve_weights,
)
from dmtnet_arch.utils.device_util import AMP_DTYPES, check_device
from dmtnet_arch.utils.file_util import DISK_FULL_ERRNOS, csv_bytes, temporary_name, write_bytes_atomically
from dmtnet_arch.utils.img_util import bit_depth, float_to_integer, img2tensor, tensor2img, to_float, write_image
from dmtnet_arch.utils.options import read_option_file
from dmtnet_arch.utils.tile_util import check_tiling, tiled_forward

logger = logging.getLogger('dmtnet_arch.tools.inference')

# Channel-count attributes: DMTNet, DPDNet and IFAN declare in_channels, Restormer its official inp_channels;
# in_nc and in_chans are common names in other registered networks.
IN_CHANNEL_NAMES = ('in_channels', 'inp_channels', 'in_nc', 'in_chans')
OUTPUT_SUFFIXES = {'.png': '.png', '.tif': '.tif', '.tiff': '.tiff', '.jpg': '.png', '.jpeg': '.png'}
FALLBACK_TILE, FALLBACK_OVERLAP, SMALLEST_TILE = 512, 64, 64
STOP_RUN_ERRNOS = (*DISK_FULL_ERRNOS, errno.EROFS)


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
# Reading and writing


@dataclass
class InputPair:
    """One scene to deblur: the network's input and what the output must look like."""

    name: str
    lq: torch.Tensor  # (1, C, H, W) float32 in [0, 1]
    bits: int
    note: str = ''


def output_name(sample: DualPixelSample) -> str:
    """The input's name: the scene name (left view's stem without its _L token) and its format (JPEG -> PNG)."""
    suffix = Path(sample.left).suffix.lower()
    return sample.name + OUTPUT_SUFFIXES.get(suffix, '.png')


def read_input(sample: DualPixelSample, channels: int) -> InputPair:
    """Read the views of a sample, check they match, and stack what the network takes; errors name the files."""
    if Path(sample.left).resolve() == Path(sample.right).resolve():
        raise ValueError(f'{sample.left} is given as both the left and the right view')
    views = read_sample_views(sample, ('left', 'right', 'combined') if channels == 3 else ('left', 'right'))
    problem = identical_views(sample.left, sample.right, views['left'], views['right'])
    if problem:
        logger.warning(f'{sample.name}: {problem}; the output will be worse than with a real pair')
    left, right, *combined = (to_float(image) for image in views.values())
    if channels == 6:
        stacked, note = np.concatenate([left, right], axis=2), 'left and right views'
    elif channels == 3:
        stacked = combined[0] if combined else (left + right) / 2
        note = f'combined view {sample.combined}' if combined else 'mean of the left and right views'
    else:
        raise ValueError(f'the network takes {channels} input channels; only 6 (left, right) or 3 are supported')
    return InputPair(output_name(sample), img2tensor(stacked)[None], bit_depth(views['left']), note)


def pairs_from_arguments(left: str, right: str) -> tuple[list, list]:
    """``--left L.png --right R.png`` or ``--left DIR --right DIR`` as samples and problems."""
    left_path, right_path = Path(left), Path(right)
    if left_path.is_dir() and right_path.is_dir():
        return pair_views_by_name(left_path, right_path)
    if left_path.is_dir() or right_path.is_dir():
        raise ValueError(f'--left {left} and --right {right}: give two files or two folders')
    return [DualPixelSample(scene_name(left_path), str(left_path), str(right_path))], []


def overlapping_input(output: Path, option: str, given) -> str | None:
    """Why ``output`` (resolved) may not take the outputs of input ``option`` (a file or folder), or None. A folder
    must neither be the output nor hold it; a file's folder must not be the output (an output takes its scene's
    name, which is a view's own name when the view has no _L/_R token)."""
    path = Path(given).resolve()
    if path.is_dir():
        if output == path:
            return f'is the input folder of {option} {given}'
        if path in output.parents:
            return f'is inside the input folder of {option} {given}'
        return None
    if output == path.parent:
        return f'is the folder of {option} {given}'
    return None


def check_output_folder(output, inputs: dict) -> Path:
    """Refuse an output folder that is, or is inside, an input folder (``inputs``: option -> path given), then
    make sure it can be written, before any network runs. Returns the folder, created."""
    folder = Path(output).resolve()
    for option, given in inputs.items():
        reason = given and overlapping_input(folder, option, given)
        if reason:
            raise ValueError(
                f'--output {output} {reason}: the outputs would be written among the inputs, replacing views of the '
                'same name or being read as inputs next time. Choose an output folder outside every input folder.'
            )
    check_writable(folder)
    return folder


def check_writable(folder: Path):
    """Create ``folder`` and write a small file in it, so a read-only, forbidden or full folder is an error now,
    not after every image was computed."""
    probe = temporary_name(folder / 'write_test')
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(bytes(65536))
        finally:
            if probe.exists():
                probe.unlink()
    except OSError as error:
        raise OSError(
            error.errno, f'--output {folder}: cannot write there ({error.strerror}); choose a writable folder'
        ) from None


# ----------------------------------------------------------------------------------------------------------------
# Running


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA out-of-memory, or a CPU allocation failure (``DefaultCPUAllocator: can't allocate memory``)."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in message or 'out of memory' in message)


def peak_memory_text(device: torch.device) -> str:
    """Peak GPU memory allocated by torch on a GPU; the process's peak resident memory on a CPU."""
    if device.type == 'cuda':
        return f'peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB'
    return f'peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB'


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
        if self.amp not in (None, *AMP_DTYPES):
            raise ValueError(f'--amp must be bf16 or fp16, got {self.amp!r}')
        if self.amp == 'fp16' and self.device.type != 'cuda':
            raise ValueError('--amp fp16 needs a GPU; use --amp bf16 or no --amp on a CPU')
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

    def autocast(self):
        dtype = AMP_DTYPES.get(self.amp)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """One network call (an image or a tile); records the DMSSRMs' alpha of the call when asked."""
        if self.channels_last:
            lq = lq.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            out = self.runner(lq)
        if self.record_alpha:
            self.alphas.append(torch.stack([a.float().cpu() for a in self.bare_net.scale_weights], dim=1))
        return out.float()

    @torch.inference_mode()
    def __call__(self, lq: torch.Tensor, name: str = 'image') -> torch.Tensor:
        """The output for ``lq`` (N, C, H, W): tiled when asked, or when the whole image does not fit in memory."""
        self.alphas = []
        lq = lq.to(self.device)
        if self.tile:
            return tiled_forward(self.forward, lq, self.tile, self.tile_overlap)
        try:
            return self.forward(lq)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
        return self.fallback_to_tiles(lq, name)

    def fallback_to_tiles(self, lq: torch.Tensor, name: str) -> torch.Tensor:
        """Retry in tiles of 512 (then 256, 128, 64) pixels; the last failure is raised if even 64 does not fit."""
        tile = FALLBACK_TILE
        while True:
            self.alphas = []
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()
            overlap = min(FALLBACK_OVERLAP, tile // 4)
            logger.warning(f'{name}: out of memory; retrying in {tile} px tiles, {overlap} overlap')
            try:
                return tiled_forward(self.forward, lq, tile, overlap)
            except Exception as error:
                if not is_out_of_memory(error) or tile <= SMALLEST_TILE:
                    raise
            tile //= 2

    def mean_alpha(self) -> np.ndarray:
        """(DMSSRMs, scales) alpha of the last image: the call's alpha, or the mean over its tiles."""
        return torch.cat(self.alphas).mean(dim=0).numpy()


# ----------------------------------------------------------------------------------------------------------------
# A whole run


@dataclass
class RunReport:
    """What a run did: images written, the failures with their reasons, the time and the alpha per image."""

    written: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    seconds: float = 0.0
    alphas: dict = field(default_factory=dict)

    def summary(self, device: torch.device) -> str:
        rate = len(self.written) / self.seconds if self.seconds else 0.0
        return (
            f'{len(self.written)} images in {self.seconds:.1f} s ({rate:.2f} images/s), {len(self.failures)} failed, '
            f'{peak_memory_text(device)}'
        )


def deblur_all(
    deblurrer: Deblurrer,
    samples: list,
    output_dir,
    channels: int,
    bits: int | None = None,
    progress: bool = True,
) -> RunReport:
    """Deblur every sample into ``output_dir``; a failing sample is recorded and the others still run."""
    report = RunReport()
    output_dir = Path(output_dir)
    start = time.perf_counter()
    with logging_redirect_tqdm():  # log lines above the bar, not through it
        for sample in tqdm(samples, unit='image', desc='Deblurring', disable=not progress):
            deblur_one(deblurrer, sample, output_dir, channels, bits, report)
    report.seconds = time.perf_counter() - start
    return report


def deblur_one(deblurrer: Deblurrer, sample: DualPixelSample, output_dir: Path, channels: int, bits, report):
    """Read, run and write one sample into ``report``; any failure is recorded with the files' names."""
    try:
        pair = read_input(sample, channels)
        output = deblurrer(pair.lq, pair.name)
        out_bits = bits or pair.bits
        write_image(output_dir / pair.name, float_to_integer(tensor2img(output), out_bits))
    except Exception as error:  # one bad pair must not lose the others (KeyboardInterrupt is not an Exception)
        if isinstance(error, OSError) and error.errno in STOP_RUN_ERRNOS:
            raise  # a full or read-only disk: every later image would be computed only to fail the same way
        report.failures.append(f'{sample.left} + {sample.right}: {error}')
        logger.error(f'skipped {sample.name}: {error}')
        return
    logger.info(f'{pair.name}: {pair.note}, {pair.bits}-bit in, {out_bits}-bit out')
    report.written.append(str(output_dir / pair.name))
    if deblurrer.record_alpha:
        report.alphas[pair.name] = deblurrer.mean_alpha()


def write_alpha_csv(path, alphas: dict, blur: dict | None = None, blur_label: str = 'blur'):
    """One row per image and DMSSRM: ``image, [blur_label,] dmssrm, alpha_1 .. alpha_S`` (scale j pools by
    2^(j-1)); ``alphas`` maps an image to its (DMSSRMs, S) array, ``blur`` (optional) to its amount of blur."""
    extra = [blur_label] if blur is not None else []
    num_scales = max((table.shape[1] for table in alphas.values()), default=3)
    header = ['image', *extra, 'dmssrm', *[f'alpha_{j + 1}' for j in range(num_scales)]]
    rows = []
    for image, table in alphas.items():
        blur_value = [f'{blur[image]:.4f}'] if blur is not None else []
        for stage, values in enumerate(table, start=1):
            rows.append([image, *blur_value, stage, *[f'{value:.6f}' for value in values]])
    write_bytes_atomically(path, csv_bytes(header, rows, lineterminator='\n'))
