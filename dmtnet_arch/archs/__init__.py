"""Registers every `*_arch.py` in this folder in BasicSR's registry by importing it. Each network registered here is
decorated with ``record_constructor_options``: it keeps the options that built it (``build_options``, saved in its
checkpoints: dmtnet_arch/utils/checkpoint.py)."""

from dmtnet_arch.utils.registry_util import import_modules_with_suffix

imported_modules = import_modules_with_suffix(__name__, __file__, '_arch')
