"""Parameter and multiply-accumulate counts through torch.utils.flop_counter (MACs = counted FLOPs / 2)."""

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def count_macs(net: nn.Module, input_shape: tuple[int, ...], on_meta: bool = True) -> float:
    """MACs of one forward pass for an input of ``input_shape``; FlopCounterMode counts 2 FLOPs per MAC.

    On the meta device no arithmetic runs, so full-resolution counts take seconds; the network is copied first.
    Attention matmuls are counted (thop-style counters skip them).
    """
    device = torch.device('meta') if on_meta else next(net.parameters()).device
    model = copy.deepcopy(net).to(device).eval()
    x = torch.empty(input_shape, device=device) if on_meta else torch.rand(input_shape, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2
