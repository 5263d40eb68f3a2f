"""Devices and precision: the AMP dtypes, device checks."""

import torch

from dmtnet_arch.utils.options import OptionError

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_device(requested: str, where: str = '--device') -> torch.device:
    """A device name such as ``cuda`` or ``cuda:1`` must exist here; one clear message when it does not."""
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise OptionError(f'{where} {requested!r} is not a device name ({error})') from error
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise OptionError(f'{where} {requested}: PyTorch sees {count} GPU(s) on this machine; use {where} cpu')
    return device
