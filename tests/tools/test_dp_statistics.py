"""dp_statistics' compression measurement: the consistency statistic and the quality interpolation."""

import numpy as np
import pytest

from dmtnet_arch.tools import dp_statistics as stats


def test_views_that_average_to_the_combined_view_are_fully_consistent():
    rng = np.random.default_rng(0)
    left, right = rng.random((2, 32, 32, 3))
    error = stats.consistency_error(left, right, (left + right) / 2)
    assert error.shape == (32, 32) and np.all(error < 1e-20)
    shifted = stats.consistency_error(left, right, (left + right) / 2 + 0.01)
    assert np.allclose(shifted, 1e-4)
    assert np.isclose(stats.blocks_psnr(shifted, [(0, 0), (16, 16)], 16), 40.0)


def test_equivalent_setting_interpolates_and_bounds_whichever_way_the_setting_runs():
    quality = {10: 30.0, 20: 34.0, 30: 36.0}  # JPEG: more consistent at a higher quality
    assert stats.equivalent_setting(35.0, quality) == 25.0
    assert stats.equivalent_setting(29.0, quality) == 'lossier than 10'
    assert stats.equivalent_setting(37.0, quality) == 'less lossy than 30'
    crf = {20: 44.0, 30: 40.0, 40: 36.0}  # H.264: less consistent at a higher CRF
    assert stats.equivalent_setting(38.0, crf) == 35.0
    assert stats.equivalent_setting(35.0, crf) == 'lossier than 40'


def test_rendered_views_lose_more_at_lower_jpeg_quality_and_higher_h264_crf():
    rng = np.random.default_rng(1)
    target = rng.random((64, 64, 3)).astype(np.float32)
    mse = {
        q: float(e.mean())
        for q, e in stats.rendered_errors(target, 3.0, 8, stats.CODECS['jpeg'], (20, 90, None)).items()
    }
    assert mse[20] > mse[90] > mse[None] > 0  # 8-bit rounding alone already separates the three files
    pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    mse = {q: float(e.mean()) for q, e in stats.rendered_errors(target, 3.0, 8, stats.CODECS['h264'], (45, 20)).items()}
    assert mse[45] > mse[20]


def test_stored_bits_sees_8_bit_values_in_a_16_bit_file():
    codes = np.arange(256, dtype=np.uint16).reshape(16, 16, 1).repeat(3, axis=2)
    assert stats.stored_bits(codes.astype(np.uint8)) == 8
    assert stats.stored_bits(codes * 257) == 8
    assert stats.stored_bits(codes * 257 + 1) == 16
