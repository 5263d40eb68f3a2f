"""Registers every `*_arch.py` in this folder in BasicSR's registry by importing it; each network registered here
keeps the options that built it (``build_options``, saved in its checkpoints: dmtnet_arch/utils/checkpoint.py)."""

from basicsr.utils.registry import ARCH_REGISTRY

from dmtnet_arch.utils.checkpoint import record_constructor_options
from dmtnet_arch.utils.registry_util import import_modules_with_suffix

imported_modules = import_modules_with_suffix(__name__, __file__, '_arch')
for _name, _arch in ARCH_REGISTRY:
    if _arch.__module__.startswith(f'{__name__}.'):
        record_constructor_options(_arch)
