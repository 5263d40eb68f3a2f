"""The plugin's one version string; ``setup.py`` reads it and checkpoints record it."""

__version__ = '0.1.0'
