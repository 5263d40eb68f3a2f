"""Helpers every dual-pixel network shares: input checking and padding to the size multiple it works on."""

import torch
import torch.nn.functional as F


def check_dual_pixel_input(x: torch.Tensor, channels: int, network: str):
    """Refuse anything but an (N, ``channels``, H, W) tensor, naming the network and the layout it expects."""
    if x.dim() != 4 or x.shape[1] != channels:
        layout = ', the left then the right dual-pixel view concatenated on channels' if channels == 6 else ''
        raise ValueError(f'{network} expects a (N, {channels}, H, W) tensor{layout}; got shape {tuple(x.shape)}')


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom and right to a multiple of ``multiple``: reflect where the image is large enough, else replicate."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not (pad_h or pad_w):
        return x
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
