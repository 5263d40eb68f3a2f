"""Registers every `*_dataset.py` in this folder in BasicSR's registry by importing it."""

from dmtnet_arch.utils.registry_util import import_modules_with_suffix

imported_modules = import_modules_with_suffix(__name__, __file__, '_dataset')
