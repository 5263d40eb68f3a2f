"""DPDNet's official Keras weights (``defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5``) as a BasicSR checkpoint.

The official file is a whole-model Keras HDF5: ``model_weights/conv2d_N/conv2d_N/{kernel:0, bias:0}``, N in the order
``unet()`` creates its layers, kernels stored (height, width, in, out); newer Keras writes ``conv2d, conv2d_1, ...``
and ``kernel, bias``, which are read too. The official code reads images with OpenCV, so its input views and its
output are BGR; our network works on RGB, so the first convolution's input channels (of both views) and the last
convolution's output channels are reordered. Everything else is a transpose.
"""

import os.path as osp
import re

import h5py
import numpy as np
import torch

from dmtnet_arch.archs.dpdnet_arch import DPDNet
from dmtnet_arch.utils.checkpoint import RECORD_KEY, network_record
from dmtnet_arch.utils.file_util import save_torch_atomically

CONV_LAYER = re.compile(r'conv2d(?:_(\d+))?$')
BGR_TO_RGB = [2, 1, 0]
BGR_TO_RGB_VIEWS = [2, 1, 0, 5, 4, 3]  # left then right view, each reversed


def layer_weights(group: h5py.Group, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The (kernel, bias) arrays somewhere under one layer's group."""
    found = {}

    def collect(name: str, item):
        if isinstance(item, h5py.Dataset):  # 'kernel:0' in Keras 2, 'kernel' in Keras 3
            found[name.rsplit('/', 1)[-1].removesuffix(':0')] = item[()]

    group.visititems(collect)
    if 'kernel' not in found or 'bias' not in found:
        raise ValueError(f'{path}: layer {group.name} has no kernel and bias (found {sorted(found)})')
    return found['kernel'], found['bias']


def read_keras_convs(path: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(layer name, kernel, bias)`` of every Conv2D layer of a Keras HDF5 file, in creation order.

    Accepts whole-model files (layers under ``model_weights``) and ``save_weights`` files (layers at the root); the
    creation order is the number Keras appends to the name (``conv2d`` alone is the first in newer Keras).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: Keras weights file not found')
    try:
        handle = h5py.File(path, 'r')
    except OSError as error:
        raise ValueError(f'{path}: not an HDF5 file ({error})') from error
    with handle:
        root = handle['model_weights'] if 'model_weights' in handle else handle
        numbered = []
        for name in root:
            match = CONV_LAYER.match(name)
            if match and isinstance(root[name], h5py.Group):
                numbered.append((int(match.group(1) or 0), name))
        return [(name, *layer_weights(root[name], path)) for _, name in sorted(numbered)]


def keras_to_dpdnet_state(path: str, net: DPDNet) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` (RGB) holding the Keras (BGR) weights in ``path``."""
    convs = read_keras_convs(path)
    targets = net.keras_layer_order()
    if len(convs) != len(targets):
        raise ValueError(
            f'{path}: expected the {len(targets)} Conv2D layers of DPDNet, found {len(convs)}: '
            f'{[name for name, _, _ in convs]}'
        )
    names = {module: name for name, module in net.named_modules()}
    state = {}
    for (layer, kernel, bias), conv in zip(convs, targets, strict=True):
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()
        if weight.shape != conv.weight.shape or tuple(bias.shape) != tuple(conv.bias.shape):
            raise ValueError(
                f'{path}: layer {layer} has kernel {kernel.shape} and bias {bias.shape}; {names[conv]} expects '
                f'(h, w, in, out) = {tuple(conv.weight.shape[i] for i in (2, 3, 1, 0))} and ({conv.bias.shape[0]},)'
            )
        state[f'{names[conv]}.weight'] = weight
        state[f'{names[conv]}.bias'] = torch.from_numpy(np.array(bias)).float()
    first, last = names[targets[0]], names[targets[-1]]
    state[f'{first}.weight'] = state[f'{first}.weight'][:, BGR_TO_RGB_VIEWS].contiguous()
    state[f'{last}.weight'] = state[f'{last}.weight'][BGR_TO_RGB].contiguous()
    state[f'{last}.bias'] = state[f'{last}.bias'][BGR_TO_RGB].contiguous()
    return state


def convert_dpdnet_keras(input_path: str, output_path: str, base_channels: int = 64) -> DPDNet:
    """Write ``output_path`` = ``{'params': state dict, 'built_with': record}`` for ``DPDNet(base_channels=...)``, the
    record checked on load like every checkpoint the plugin writes; returns the loaded net."""
    net = DPDNet(base_channels=base_channels)
    net.load_state_dict(keras_to_dpdnet_state(input_path, net), strict=True)
    save_torch_atomically({'params': net.state_dict(), RECORD_KEY: network_record(net)}, output_path)
    return net
