"""ONNX export of a trained network (``scripts/export_onnx.py``) and the onnxruntime parity check; docs/inference.md.

PyTorch's TorchScript-based exporter (``dynamo=False``) traces DMTNet with symbolic height and width: the padding
to the working multiple, the window partition and the shifted-window mask are all computed from the input's shape
inside the graph, so one file serves every size. Python branches are fixed at the traced size, so the trace is
taken at a size that takes DMTNet's general branches (padding needed on both sides, reflect padding, shifted
windows on); the graph is then exact for every H, W larger than ``patch_size * window_size`` (32 px for the
paper's settings). ``--height/--width`` export one fixed size instead.
"""

import warnings
from pathlib import Path

import numpy as np
import torch

from dmtnet_arch.utils.file_util import write_atomically

OPSET = 17  # LayerNormalization is a single ONNX operator from opset 17 on; onnxruntime >= 1.14 runs it
INPUT_NAME, OUTPUT_NAME = 'lq', 'output'


def trace_size(net: torch.nn.Module) -> tuple[int, int]:
    """A size whose trace takes the general branches: larger than the working multiple and not a multiple of it."""
    multiple = getattr(net, 'size_multiple', 32)
    return 2 * multiple + 1, 3 * multiple + 1


def smallest_dynamic_side(net: torch.nn.Module) -> int:
    """Inputs of a dynamic export must be larger than this on both sides: the traced graph pads to the working
    multiple by reflection (ONNX's reflect pad needs a side longer than the pad: more than half the multiple), and
    DMTNet's shifted windows are on at the traced size (a side longer than patch x window)."""
    reflect_bound = getattr(net, 'size_multiple', 1) // 2
    feature_extraction = getattr(net, 'feature_extraction', None)
    patch = getattr(getattr(feature_extraction, 'patch_partition', None), 'proj', None)
    blocks = getattr(feature_extraction, 'blocks', None)
    if patch is None or not blocks:
        return reflect_bound
    return max(reflect_bound, patch.stride[0] * blocks[0].window_size)


def check_export_arguments(height: int | None, width: int | None, opset: int):
    """A fixed size needs both sides, each positive; the opset must have LayerNormalization. Errors name the option."""
    if (height is None) != (width is None):
        raise ValueError('give both --height and --width for a fixed-size export, or neither for dynamic H and W')
    for option, value in (('--height', height), ('--width', width)):
        if value is not None and value < 1:
            raise ValueError(f'{option} must be a positive number of pixels, got {value}')
    if opset < OPSET:
        raise ValueError(
            f'--opset must be at least {OPSET} (LayerNormalization is one operator from {OPSET} on), got {opset}'
        )


def export_onnx(
    net: torch.nn.Module, path, channels: int, height: int | None = None, width: int | None = None, opset: int = OPSET
) -> dict:
    """Write ``net`` as ONNX to ``path`` (atomically); dynamic H and W unless ``height`` and ``width`` are given.

    Args:
        net (torch.nn.Module): The network with its weights (put in eval mode on the CPU).
        path: The .onnx file to write.
        channels (int): Input channels: 6 (left then right view) or 3 (one image).
        height (int | None): Fixed input height, with ``width``; None for a dynamic height and width. Default: None.
        width (int | None): Fixed input width, with ``height``. Default: None.
        opset (int): ONNX opset. Default: :data:`OPSET`.

    Returns:
        dict: What a user of the file needs to know: input shape, whether H and W are dynamic (and the smallest
        side then), the opset."""
    check_export_arguments(height, width, opset)
    dynamic = height is None
    size = trace_size(net) if dynamic else (height, width)
    example = torch.rand(1, channels, *size)
    axes = {2: 'height', 3: 'width'}
    dynamic_axes = {INPUT_NAME: {0: 'batch', **axes}, OUTPUT_NAME: {0: 'batch', **axes}} if dynamic else None
    net = net.eval().cpu()

    def write(temp: Path):
        # the tracer warns about the Python branches on the input's size: trace_size() picks the general ones
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(
                net,
                (example,),
                str(temp),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )

    write_atomically(path, write)
    return {
        'input': f'(N, {channels}, {"H" if dynamic else height}, {"W" if dynamic else width}) float32 in [0, 1]',
        'dynamic': dynamic,
        'smallest_side': smallest_dynamic_side(net) + 1 if dynamic else None,
        'opset': opset,
    }


def onnx_outputs(path, lq: np.ndarray) -> np.ndarray:
    """The ONNX file's output for ``lq`` (N, C, H, W float32) on onnxruntime's CPU provider."""
    import onnxruntime  # optional dependency (the export extra)

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {INPUT_NAME: lq.astype(np.float32)})[0]


def parity_error(net: torch.nn.Module, path, lq: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime and PyTorch on ``lq``."""
    with torch.no_grad():
        expected = net.eval().cpu()(lq).numpy()
    return float(np.abs(onnx_outputs(path, lq.numpy()) - expected).max())
