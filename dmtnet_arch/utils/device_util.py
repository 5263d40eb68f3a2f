"""Devices and precision, one home for each: mixed precision, synchronisation, peak memory, the machine's name.

torch is imported inside the functions that need it, never at module level: the onnxruntime backend of
``scripts/inference.py`` measures its peak memory and names its machine through this module in a process that
must not import torch (its memory target is the whole process).
"""

import contextlib
import os
import platform
import time
from pathlib import Path

AMP_NAMES = ('bf16', 'fp16')


def amp_dtype(amp: str | None):
    """The torch dtype of an AMP name (``bf16``, ``fp16``), None for none; another name is an error naming it."""
    if not amp:
        return None
    import torch

    dtypes = {'bf16': torch.bfloat16, 'fp16': torch.float16}
    if amp not in dtypes:
        raise ValueError(f'amp must be one of {", ".join(AMP_NAMES)} or none, got {amp!r}')
    return dtypes[amp]


def device_type(device) -> str:
    """``'cuda'``, ``'cpu'``, ... of a torch.device or a device name such as ``cuda:1``."""
    return getattr(device, 'type', None) or str(device).split(':')[0]


def check_amp(device, amp: str | None, option: str = '--amp'):
    """fp16 autocast runs on a GPU only (CPU float16 kernels are few and slow, and need a grad scaler); bf16 runs on
    both: PyTorch's CPU autocast sends convolutions and matmuls to oneDNN's bf16 kernels (AVX-512 bf16, AMX)."""
    amp_dtype(amp)
    if amp == 'fp16' and device_type(device) != 'cuda':
        raise ValueError(f'{option} fp16 needs a GPU; use {option} bf16 or no {option} on a CPU')


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 bf16 or AMX); without them bf16 is emulated and
    slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN, or a torch that renamed the private check
        return False


def autocast(device, amp: str | None):
    """Autocast to ``amp`` (bf16, fp16) on ``device``'s type, or a context that does nothing when ``amp`` is None;
    the same on a GPU and a CPU."""
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type(device), dtype=dtype)


def check_device(requested: str, where: str = '--device'):
    """A device name such as ``cuda`` or ``cuda:1`` must exist here; one clear message when it does not."""
    import torch

    from dmtnet_arch.utils.options import OptionError  # not at the top: options imports torch

    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise OptionError(f'{where} {requested!r} is not a device name ({error})') from error
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise OptionError(f'{where} {requested}: PyTorch sees {count} GPU(s) on this machine; use {where} cpu')
    return device


def synchronize(device=None):
    """Wait for the GPU's queued work (timings otherwise measure the launch only); nothing to wait for on a CPU.
    ``device`` None: the current CUDA device when there is one."""
    if device is not None and device_type(device) != 'cuda':
        return
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize(device)


def resident_gib(field: str = 'VmRSS') -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since start or the last reset) of this process, in GiB (Linux)."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(f'{field}:'):
            return int(line.split()[1]) / 2**20
    raise OSError(f'/proc/self/status has no {field}')


class PeakMemory:
    """Peak memory over a ``with`` block (or since creation without one): on a GPU the memory torch allocated
    (``max_memory_allocated``, reset on entry), on a CPU the process's peak resident set size (``VmHWM``, reset on
    entry by writing 5 to ``/proc/self/clear_refs``; it counts the interpreter, libraries and weights too).

    ``reset=False`` keeps the peak since the process (or the GPU's statistics) started: the whole-process figure.
    ``before_gib`` is what was in use when the block began; ``peak_gib()`` the peak so far.
    """

    def __init__(self, device='cpu', reset: bool = True):
        self.device = device
        self.reset = reset
        self.before_gib = self.current_gib()

    @property
    def on_gpu(self) -> bool:
        return device_type(self.device) == 'cuda'

    @property
    def kind(self) -> str:
        return 'peak GPU memory allocated' if self.on_gpu else 'peak resident memory of the process'

    def current_gib(self) -> float:
        if self.on_gpu:
            import torch

            return torch.cuda.memory_allocated(self.device) / 2**30
        return resident_gib('VmRSS')

    def __enter__(self):
        return self.start()

    def start(self):
        """Record what is in use now and, with ``reset``, restart the peak from it."""
        synchronize(self.device)
        self.before_gib = self.current_gib()
        if self.reset:
            if self.on_gpu:
                import torch

                torch.cuda.reset_peak_memory_stats(self.device)
            else:
                Path('/proc/self/clear_refs').write_text('5')
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        return False

    def peak_gib(self) -> float:
        if self.on_gpu:
            import torch

            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return resident_gib('VmHWM')

    def text(self) -> str:
        """'peak resident memory of the process 0.93 GiB'."""
        return f'{self.kind} {self.peak_gib():.2f} GiB'


def processor_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe_machine(device='cpu', threads: int | None = None, with_torch: bool = True, with_date: bool = True) -> str:
    """One line for the top of a results table: date (UTC), the GPU or 'CPU only' and the processor, cores, load
    average, threads, torch version. ``with_torch=False`` leaves torch out (a process without it: the onnxruntime
    backend); ``with_date=False`` the date (a report that dates itself)."""
    parts = [time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())] if with_date else []
    if device_type(device) == 'cuda':
        import torch

        parts.append(f'{torch.cuda.get_device_name(device)} (CUDA)')
    else:
        parts.append(f'CPU only: {processor_name()}, {os.cpu_count()} cores')
    if hasattr(os, 'getloadavg'):
        parts.append('load ' + ' '.join(f'{value:.2f}' for value in os.getloadavg()))
    if with_torch:
        import torch

        parts.append(f'{threads or torch.get_num_threads()} torch threads, torch {torch.__version__}')
    elif threads:
        parts.append(f'{threads} threads')
    return ' | '.join(parts)
