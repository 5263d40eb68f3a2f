"""The views' horizontal shift: its sign and size, the textured blocks it is measured on, the view-order check."""

import cv2
import numpy as np
import pytest

from dmtnet_arch.utils.disparity_util import block_shifts, horizontal_shift, reversed_view_order_share


def test_horizontal_shift_finds_a_known_shift_and_its_sign():
    rng = np.random.default_rng(0)
    texture = np.repeat(rng.random(80)[None, :], 24, axis=0)
    texture = np.cumsum(texture - 0.5, axis=1)  # smooth enough for a sub-pixel peak
    left, right = texture[:, 10:66], texture[:, 7:63]  # right view's content 3 px further right
    assert horizontal_shift(left, right, 8) == pytest.approx(3.0, abs=0.2)
    assert horizontal_shift(right, left, 8) == pytest.approx(-3.0, abs=0.2)


def blurred_pair(shift_px: int, height: int = 136, width: int = 184) -> tuple:
    """A textured scene blurred by a small box and its two views shifted ``shift_px`` apart (right view right)."""
    scene = cv2.blur(np.random.default_rng(1).random((height, width, 3)), (5, 5))
    return np.roll(scene, -shift_px // 2, axis=1), np.roll(scene, shift_px - shift_px // 2, axis=1)


def test_block_shifts_skip_flat_blocks_and_measure_textured_ones():
    left, right = blurred_pair(2)
    grey_left, grey_right = left.mean(axis=2), right.mean(axis=2)
    blocks = list(block_shifts(grey_left, grey_right))
    assert len(blocks) == 2 * 3 and all(shift == pytest.approx(2.0, abs=0.2) for *_, shift in blocks)
    grey_left[:, :125] = 0.5  # flat where the first two columns of blocks (and their search range) lie
    assert [x0 for _, x0, _ in block_shifts(grey_left, grey_right)] == [116, 116]


def test_view_order_share_is_the_share_of_blocks_shifted_left():
    left, right = blurred_pair(2)
    assert reversed_view_order_share(left, right) == (0.0, 6)  # DPDD's order, blur behind the focal plane
    assert reversed_view_order_share(right, left) == (1.0, 6)  # the views the other way round
    assert reversed_view_order_share(left, right, max_blocks=2) == (0.0, 2)  # a sparser grid on a budget
    flat = np.full((136, 184, 3), 0.5)
    assert reversed_view_order_share(flat, flat) == (0.0, 0)  # nothing to measure
