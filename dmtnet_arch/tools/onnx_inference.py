"""The onnxruntime backend of ``scripts/inference.py``: an exported network run without torch; docs/inference.md.

The file comes from ``scripts/export_onnx.py`` (dynamic height and width). Pairing, reading, tiling, writing and
error handling are :mod:`dmtnet_arch.tools.inference_io`'s, as for the torch backend, so both write the same files
under the same names; only the network call differs. This module imports neither torch nor basicsr: with
``dmtnet_arch_startup.import_package_without_registration()`` first, a whole deblurring process holds onnxruntime,
OpenCV and numpy only (docs/performance.md has its peak memory).
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmtnet_arch.tools.inference_io import whole_or_tiled
from dmtnet_arch.utils.device_util import PeakMemory, describe_machine
from dmtnet_arch.utils.tile_util import check_tiling

# What the torch backend offers and this one does not: option -> why, for the error message.
TORCH_ONLY_OPTIONS = {
    '--amp': 'the exported graph is float32',
    '--compile': 'torch.compile applies to torch networks',
    '--channels-last': 'onnxruntime chooses its own layouts',
    '--save-alpha': 'the exported graph returns the output image only',
    '--param-key': 'the ONNX file holds one set of weights',
    '-opt': 'the ONNX file holds the network',
}


def open_session(path, threads: int | None = None):
    """An onnxruntime CPU session for the ONNX file ``path``; a missing or unreadable file is an error naming it."""
    import onnxruntime

    path = Path(path)
    if path.suffix.lower() != '.onnx':
        raise ValueError(
            f'--weights {path}: the onnxruntime backend runs an .onnx file; export a checkpoint with '
            f'scripts/export_onnx.py --weights {path} --output {path.with_suffix(".onnx").name}'
        )
    if not path.is_file():
        raise FileNotFoundError(f'--weights {path}: no such file')
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Tiles and images of many sizes: a memory pattern planned for one shape is replanned for every other one and
    # kept, so it only adds to the peak.
    options.enable_mem_pattern = False
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    except Exception as error:  # onnxruntime's own exception types: InvalidProtobuf, Fail, NoSuchFile
        raise ValueError(f'--weights {path}: onnxruntime cannot load it: {error}') from error


@dataclass
class OnnxDeblurrer:
    """An ONNX file ready to run on the CPU: tiling and the out-of-memory fallback as :class:`Deblurrer`'s."""

    path: str
    tile: int | None = None
    tile_overlap: int = 64
    threads: int | None = None
    record_alpha: bool = field(default=False, init=False)  # the run loop asks; the graph has no scale weights

    def __post_init__(self):
        if self.tile:
            check_tiling(self.tile, self.tile_overlap)
        self.session = open_session(self.path, self.threads)
        declared = self.session.get_inputs()[0]
        self.input_name = declared.name
        self.channels = declared.shape[1] if isinstance(declared.shape[1], int) else None
        if self.channels not in (3, 6):
            raise ValueError(
                f'--weights {self.path}: its input {declared.name} has shape {declared.shape}; expected '
                '(N, 6, H, W) left and right views or (N, 3, H, W) one image'
            )

    def forward(self, lq: np.ndarray) -> np.ndarray:
        """One network call (an image or a tile)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(lq, dtype=np.float32)})[0]

    def __call__(self, lq: np.ndarray, name: str = 'image') -> np.ndarray:
        """The output for ``lq`` (N, C, H, W float32): tiled when asked, or when the whole image does not fit."""
        return whole_or_tiled(self.forward, lq, name, self.tile, self.tile_overlap)


def check_torch_only_options(given: dict):
    """Refuse the torch backend's options that have no meaning here (``given``: option -> value), naming them."""
    wrong = [option for option, value in given.items() if value not in (None, False) and option in TORCH_ONLY_OPTIONS]
    if wrong:
        reasons = '; '.join(f'{option}: {TORCH_ONLY_OPTIONS[option]}' for option in wrong)
        raise ValueError(f'--backend onnxruntime does not take {", ".join(wrong)} ({reasons}); use --backend torch')


def measure(path, shape: tuple, tile: int | None, tile_overlap: int, warmup: int, repeats: int, threads=None) -> dict:
    """Median latency and peak resident memory of this process (VmHWM, reset after the warm-up and also reported
    for the whole process) running ``path`` on a random ``shape`` input: the onnxruntime row of
    ``scripts/benchmark.py``, run in a process without torch."""
    deblurrer = OnnxDeblurrer(str(path), tile, tile_overlap, threads)
    lq = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(warmup):
        deblurrer(lq)
    process_peak = PeakMemory(reset=False).peak_gib()
    times = []
    with PeakMemory() as memory:
        for _ in range(repeats):
            start = time.perf_counter()
            deblurrer(lq)
            times.append(time.perf_counter() - start)
    return {
        'seconds': float(np.median(times)),
        'before_gib': memory.before_gib,
        'peak_gib': memory.peak_gib(),
        'process_peak_gib': max(process_peak, memory.peak_gib()),
        'machine': describe_machine(with_torch=False, threads=threads),
    }
