"""BasicSR's file-suffix convention: a registry folder imports each of its ``*<suffix>.py`` files."""

import importlib
from pathlib import Path


def import_modules_with_suffix(package: str, package_file: str, suffix: str) -> list:
    """Import every ``*<suffix>.py`` next to ``package_file`` as a submodule of ``package``, sorted by name."""
    folder = Path(package_file).resolve().parent
    names = sorted(path.stem for path in folder.glob(f'*{suffix}.py'))
    return [importlib.import_module(f'{package}.{name}') for name in names]
