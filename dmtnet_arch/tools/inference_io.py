"""What every inference backend shares: pairing, reading and writing images, whole-or-tiled runs, a whole run.

``dmtnet_arch/tools/inference.py`` (torch) and ``dmtnet_arch/tools/onnx_inference.py`` (onnxruntime) run the
network; this module does the rest the same way for both: inputs at their own bit depth, outputs at the input's
bit depth and under its name, one bad pair reported and skipped. It imports neither torch nor basicsr (nor does
anything it imports), so that the onnxruntime backend runs in a process without them (``docs/inference.md``).
"""

import errno
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from dmtnet_arch.data.data_util import (
    DualPixelSample,
    identical_views,
    pair_views_by_name,
    read_sample_views,
    scene_name,
)
from dmtnet_arch.utils.device_util import PeakMemory
from dmtnet_arch.utils.disparity_util import reversed_view_order_share
from dmtnet_arch.utils.file_util import DISK_FULL_ERRNOS, csv_bytes, temporary_name, write_bytes_atomically
from dmtnet_arch.utils.img_util import bit_depth, float_to_integer, tensor2img, to_float, write_image
from dmtnet_arch.utils.tile_util import tiled_forward

# One logger for the inference command, whichever backend runs.
logger = logging.getLogger('dmtnet_arch.tools.inference')

OUTPUT_SUFFIXES = {'.png': '.png', '.tif': '.tif', '.tiff': '.tiff', '.jpg': '.png', '.jpeg': '.png'}
FALLBACK_TILE, FALLBACK_OVERLAP, SMALLEST_TILE = 512, 64, 64
STOP_RUN_ERRNOS = (*DISK_FULL_ERRNOS, errno.EROFS)


# ----------------------------------------------------------------------------------------------------------------
# Reading and writing


@dataclass
class InputPair:
    """One scene to deblur: the network's input and what the output must look like."""

    name: str
    lq: np.ndarray  # (1, C, H, W) float32 in [0, 1]
    bits: int
    note: str = ''


def swapped_views(samples: list) -> list:
    """The samples with their left and right views exchanged (``--swap-views``): output names are unchanged;
    messages name the files in the order the network gets them."""
    return [replace(sample, left=sample.right, right=sample.left) for sample in samples]


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
        warn_if_views_look_reversed(sample.name, left, right)
        stacked, note = np.concatenate([left, right], axis=2), 'left and right views'
    elif channels == 3:
        stacked = combined[0] if combined else (left + right) / 2
        note = f'combined view {sample.combined}' if combined else 'mean of the left and right views'
    else:
        raise ValueError(f'the network takes {channels} input channels; only 6 (left, right) or 3 are supported')
    lq = np.ascontiguousarray(stacked.transpose(2, 0, 1))[None]
    return InputPair(output_name(sample), lq, bit_depth(views['left']), note)


def warn_if_views_look_reversed(name: str, left: np.ndarray, right: np.ndarray, min_blocks: int = 8):
    """Warn when most of the clearly shifted textured blocks are shifted left in the right view: blur in front of
    the focal plane, or views labelled the other way round from DPDD's order, which the networks were trained in
    (the built-in synthetic-T does much worse than the blurred input on reversed views)."""
    share, blocks = reversed_view_order_share(left, right)
    if blocks >= min_blocks and share > 0.5:
        logger.warning(
            f'{name}: in {share:.0%} of its {blocks} shifted blocks the right view is shifted left of the left view: '
            "either the blur is in front of the focal plane or the views are the other way round from DPDD's order "
            '(right view shifted right behind the focus); if your files label them the other way, use --swap-views'
        )


def to_integer_image(output, bits: int) -> np.ndarray:
    """(1, 3, H, W) float output (numpy or torch) -> H x W x 3 RGB uint8 or uint16, clipped to [0, 1] and rounded."""
    return float_to_integer(tensor2img(output), bits)


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
# Whole or in tiles, any backend


OUT_OF_MEMORY_MESSAGES = ("can't allocate memory", 'out of memory', 'Failed to allocate memory')


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA out-of-memory (``torch.OutOfMemoryError``), a CPU allocation failure (torch's ``DefaultCPUAllocator:
    can't allocate memory``, onnxruntime's ``Failed to allocate memory``) or a Python MemoryError."""
    if isinstance(error, MemoryError) or type(error).__name__ == 'OutOfMemoryError':
        return True
    return any(message in str(error) for message in OUT_OF_MEMORY_MESSAGES)


def whole_or_tiled(forward, lq, name: str, tile: int | None, overlap: int, before_retry=None):
    """``forward(lq)`` (numpy or torch), in blended tiles when ``tile`` is set; a whole image that runs out of
    memory is retried in tiles of 512 px (then 256, 128, 64), calling ``before_retry()`` first (to free a GPU's
    cache); the last failure is raised if even 64 does not fit."""
    if tile:
        return tiled_forward(forward, lq, tile, overlap)
    try:
        return forward(lq)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
    tile = FALLBACK_TILE
    while True:
        if before_retry:
            before_retry()
        overlap = min(FALLBACK_OVERLAP, tile // 4)
        logger.warning(f'{name}: out of memory; retrying in {tile} px tiles, {overlap} overlap')
        try:
            return tiled_forward(forward, lq, tile, overlap)
        except Exception as error:
            if not is_out_of_memory(error) or tile <= SMALLEST_TILE:
                raise
        tile //= 2


# ----------------------------------------------------------------------------------------------------------------
# A whole run


@dataclass
class RunReport:
    """What a run did: images written, the failures with their reasons, the time and the alpha per image."""

    written: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    seconds: float = 0.0
    alphas: dict = field(default_factory=dict)

    def summary(self, device='cpu') -> str:
        rate = len(self.written) / self.seconds if self.seconds else 0.0
        return (
            f'{len(self.written)} images in {self.seconds:.1f} s ({rate:.2f} images/s), {len(self.failures)} failed, '
            f'{PeakMemory(device, reset=False).text()}'
        )


def deblur_all(
    deblurrer,
    samples: list,
    output_dir,
    channels: int,
    bits: int | None = None,
    progress: bool = True,
) -> RunReport:
    """Deblur every sample into ``output_dir`` with ``deblurrer`` (a backend: called with a (1, C, H, W) float32
    array and the image's name, it returns the (1, 3, H, W) output, numpy or torch; ``record_alpha`` and
    ``mean_alpha()`` for the DMSSRM scale weights); a failing sample is recorded and the others still run."""
    report = RunReport()
    output_dir = Path(output_dir)
    start = time.perf_counter()
    with logging_redirect_tqdm():  # log lines above the bar, not through it
        for sample in tqdm(samples, unit='image', desc='Deblurring', disable=not progress):
            deblur_one(deblurrer, sample, output_dir, channels, bits, report)
    report.seconds = time.perf_counter() - start
    return report


def deblur_one(deblurrer, sample: DualPixelSample, output_dir: Path, channels: int, bits, report):
    """Read, run and write one sample into ``report``; any failure is recorded with the files' names."""
    try:
        pair = read_input(sample, channels)
        output = deblurrer(pair.lq, pair.name)
        out_bits = bits or pair.bits
        write_image(output_dir / pair.name, to_integer_image(output, out_bits))
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
