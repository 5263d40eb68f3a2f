"""dp_statistics' compression measurement: the consistency statistic and the quality interpolation."""

import numpy as np

from dmtnet_arch.tools import dp_statistics as stats


def test_views_that_average_to_the_combined_view_are_fully_consistent():
    rng = np.random.default_rng(0)
    left, right = rng.random((2, 32, 32, 3))
    error = stats.consistency_error(left, right, (left + right) / 2)
    assert error.shape == (32, 32) and np.all(error < 1e-20)
    shifted = stats.consistency_error(left, right, (left + right) / 2 + 0.01)
    assert np.allclose(shifted, 1e-4)
    assert np.isclose(stats.blocks_psnr(shifted, [(0, 0), (16, 16)], 16), 40.0)


def test_equivalent_quality_interpolates_and_bounds():
    curve = {10: 30.0, 20: 34.0, 30: 36.0}
    assert stats.equivalent_jpeg_quality(35.0, curve) == '25'
    assert stats.equivalent_jpeg_quality(29.0, curve) == 'below 10'
    assert stats.equivalent_jpeg_quality(37.0, curve) == 'above 30'


def test_rendered_views_lose_more_at_lower_jpeg_quality():
    rng = np.random.default_rng(1)
    target = rng.random((64, 64, 3)).astype(np.float32)
    errors = stats.rendered_errors(target, 3.0, 8, (20, 90, None))
    mse = {q: float(e.mean()) for q, e in errors.items()}
    assert mse[20] > mse[90] > mse[None] > 0  # 8-bit rounding alone already separates the three files


def test_stored_bits_sees_8_bit_values_in_a_16_bit_file():
    codes = np.arange(256, dtype=np.uint16).reshape(16, 16, 1).repeat(3, axis=2)
    assert stats.stored_bits(codes.astype(np.uint8)) == 8
    assert stats.stored_bits(codes * 257) == 8
    assert stats.stored_bits(codes * 257 + 1) == 16
