"""Every fix this plugin makes to BasicSR 1.4.2's behaviour on current PyTorch lives here.

Each fix says what is broken, is applied once by :func:`apply`, and has a test in ``tests/test_compat.py``
that fails without it. ``dmtnet_arch/__init__.py`` applies them before anything imports ``basicsr``.
"""

import sys
import types

_applied = False


def provide_torchvision_functional_tensor():
    """Broken: ``basicsr/data/degradations.py`` imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17, so ``import basicsr`` fails. The one function it takes, ``rgb_to_grayscale``, lives in
    ``torchvision.transforms.functional``; expose it under the old module name."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        __import__(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional

    shim = types.ModuleType(name)
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[name] = shim


def apply():
    """Apply every fix; safe to call more than once."""
    global _applied
    if _applied:
        return
    provide_torchvision_functional_tensor()
    _applied = True
