"""Command-line argument types shared by the scripts and tools."""

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """``'96x160'`` (HEIGHTxWIDTH) -> ``(96, 160)``; ``'128'`` -> ``(128, 128)``. An argparse ``type``: anything else
    is an :class:`argparse.ArgumentTypeError` that shows the expected form."""
    parts = text.strip().lower().split('x')
    if len(parts) not in (1, 2) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f'a size is HEIGHTxWIDTH (e.g. 1120x1680) or N for N x N, in positive whole pixels; got {text!r}'
        )
    return int(parts[0]), int(parts[-1])


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """Comma-separated sizes, each as :func:`parse_size` reads it: ``'512x512,1120x1680'``."""
    return [parse_size(item) for item in text.split(',')]
