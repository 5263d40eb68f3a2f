"""Run at interpreter start by ``dmtnet_arch.pth``: makes every ``import basicsr`` also load this plugin.

With it, an unmodified ``basicsr/train.py`` finds ``DMTNet``, ``DualPixelDataset`` and ``DualPixelModel`` in the
registries, and ``import basicsr`` works on current torchvision whichever of the two a script imports first. The
toolbox's ``basicsr/train.py`` script also resumes through the plugin's fixed ``load_resume_state`` (CPU, any
working directory, ``weights_only``): compat swaps the script's own copy when the script calls ``parse_options``.
It imports nothing heavy at start: it waits for the first ``import basicsr``, applies ``dmtnet_arch/compat.py``
before basicsr's own code runs, then imports ``dmtnet_arch`` once basicsr is complete. Set
``DMTNET_NO_AUTOLOAD=1`` to switch it off.
"""

import importlib.abc
import importlib.util
import os
import sys
import types


def load_compat_module():
    """Load ``dmtnet_arch/compat.py`` by path: importing the package itself would import basicsr first."""
    package = importlib.util.find_spec('dmtnet_arch')
    if package is None or not package.submodule_search_locations:
        return None
    path = os.path.join(list(package.submodule_search_locations)[0], 'compat.py')
    spec = importlib.util.spec_from_file_location('dmtnet_arch_early_compat', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BasicsrLoader(importlib.abc.Loader):
    """Wraps basicsr's own loader: compat fixes before its code runs, plugin registration after."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        compat = load_compat_module()
        if compat is not None:
            compat.apply()
        self.loader.exec_module(module)
        if compat is not None:
            importlib.import_module('dmtnet_arch')


class BasicsrFinder(importlib.abc.MetaPathFinder):
    """Finds ``basicsr`` through the other finders, once, and hands back a spec with the wrapping loader."""

    def find_spec(self, name, path=None, target=None):
        if name != 'basicsr':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = BasicsrLoader(spec.loader)
        return spec


def import_package_without_registration() -> bool:
    """Make ``import dmtnet_arch.<module>`` load that module alone, without the package's ``__init__``.

    The ``__init__`` registers the networks, datasets and models with BasicSR, which imports basicsr, torch,
    OpenCV, SciPy and scikit-image (0.76 GiB resident). The onnxruntime backend of ``scripts/inference.py`` needs
    only the image, pairing and tiling helpers, which import neither torch nor basicsr: it calls this first so that
    its whole process stays small. In such a process the package registers nothing, so it must not build networks
    through BasicSR. Returns False (and does nothing) when the package is already imported or not found."""
    if 'dmtnet_arch' in sys.modules:
        return False
    spec = importlib.util.find_spec('dmtnet_arch')
    if spec is None or not spec.submodule_search_locations:
        return False
    root = list(spec.submodule_search_locations)[0]
    # the package and its subpackages (dmtnet_arch.data's __init__ registers the datasets, and so on)
    for folder, _, files in os.walk(root):
        if '__init__.py' not in files or '__pycache__' in folder:
            continue
        relative = os.path.relpath(folder, root)
        name = 'dmtnet_arch' if relative == '.' else 'dmtnet_arch.' + relative.replace(os.sep, '.')
        package = types.ModuleType(name, 'loaded without BasicSR registration')
        package.__path__ = [folder]
        sys.modules[name] = package
    return True


def install():
    """Register the finder unless disabled or basicsr is already imported."""
    if os.environ.get('DMTNET_NO_AUTOLOAD') == '1' or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, BasicsrFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrFinder())


install()
