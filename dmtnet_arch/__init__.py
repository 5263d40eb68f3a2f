"""DMTNet for BasicSR: importing this package registers its archs, datasets, models and metrics."""

from dmtnet_arch import compat

compat.apply()

from dmtnet_arch import archs, data, metrics, models  # noqa: E402,F401  (registration happens on import)

compat.patch_basicsr()

from dmtnet_arch.version import __version__  # noqa: E402,F401
