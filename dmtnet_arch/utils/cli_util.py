"""Command-line argument types shared by the scripts and tools."""

import argparse
import math


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


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'must be a whole number of at least 1, got {text!r}')
    return int(text)


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1], got {text!r}')
    return value


def positive_float(text: str) -> float:
    """A number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be above 0, got {text!r}')
    return value


def non_negative_float(text: str) -> float:
    """A number of at least 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {text!r}')
    return value


def integer_range(what: str, lowest: int, highest: int):
    """An argparse type: 'N' or 'LOW-HIGH' -> (low, high), whole numbers within ``lowest``-``highest``."""

    def parse(text: str) -> tuple:
        parts = text.split('-')
        if len(parts) not in (1, 2) or not all(part.isdigit() and lowest <= int(part) <= highest for part in parts):
            raise argparse.ArgumentTypeError(f'{what} must be N or LOW-HIGH within {lowest}-{highest}, got {text!r}')
        low, high = int(parts[0]), int(parts[-1])
        if low > high:
            raise argparse.ArgumentTypeError(f'{what} range must be LOW-HIGH, got {text!r}')
        return low, high

    return parse


def positive_range(what: str):
    """An argparse type: 'LOW-HIGH' -> (low, high), finite numbers with 0 < LOW <= HIGH."""
    message = f'{what} must be LOW-HIGH, finite numbers with 0 < LOW <= HIGH, got {{!r}}'

    def parse(text: str) -> tuple:
        try:
            low, high = (float(part) for part in text.split('-'))
        except ValueError:  # not two numbers
            raise argparse.ArgumentTypeError(message.format(text)) from None
        if not 0.0 < low <= high < math.inf:
            raise argparse.ArgumentTypeError(message.format(text))
        return low, high

    return parse


def integer_within(what: str, lowest: int, highest: int):
    """An argparse type: a whole number within ``lowest``-``highest``."""

    def parse(text: str) -> int:
        if not text.isdigit() or not lowest <= int(text) <= highest:
            raise argparse.ArgumentTypeError(f'{what} must be a whole number within {lowest}-{highest}, got {text!r}')
        return int(text)

    return parse


def add_codec_arguments(parser: argparse.ArgumentParser, ranges: bool, views: str = 'the input views') -> None:
    """``--jpeg-quality`` (1-100) or ``--h264-crf`` (0-51, needs PyAV), one of the two: a value, or with ``ranges``
    a value or a LOW-HIGH range drawn from per sample."""
    kind, form = (integer_range, 'N or LOW-HIGH') if ranges else (integer_within, 'N')
    codec = parser.add_mutually_exclusive_group()
    codec.add_argument('--jpeg-quality', type=kind('JPEG quality', 1, 100), help=f'JPEG-compress {views}, {form}')
    codec.add_argument(
        '--h264-crf',
        type=kind('H.264 CRF', 0, 51),
        help=f'code {views} as H.264 frames (libx264 CRF, higher = more loss; needs PyAV), {form}',
    )
    parser.add_argument(
        '--h264-video',
        action='store_true',
        help='with --h264-crf: the left and right views alternate in one 25 frames/s video (inter-coded, as a '
        'dual-pixel animation stores them) instead of each being a still intra frame',
    )


def check_codec_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse ``--h264-video`` without ``--h264-crf`` (argparse's own error and exit status)."""
    if args.h264_video and args.h264_crf is None:
        parser.error("--h264-video needs --h264-crf (the video's CRF)")
