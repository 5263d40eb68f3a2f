"""Devices and precision: the AMP dtypes, device checks."""

import torch

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
