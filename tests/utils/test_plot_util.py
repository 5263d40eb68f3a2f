"""utils/plot_util.py: the zoom window of the figures."""

import numpy as np

import dmtnet_arch  # noqa: F401
from dmtnet_arch.utils.plot_util import most_defocused_window


def test_zoom_window_is_the_most_defocused_region():
    defocus = np.zeros((64, 48), np.float32)
    defocus[40:52, 8:20] = -6.0  # sign does not matter: |defocus|
    defocus[0:4, 0:4] = 3.0
    assert most_defocused_window(defocus, 12) == (40, 8)
    # a window larger than the image is clipped to 48 x 48; the first that holds the whole blurred block
    assert most_defocused_window(defocus, 100) == (4, 0)
    detail = np.zeros_like(defocus)
    detail[0:4, 0:4] = 1.0  # weighted by detail, only the small block counts
    assert most_defocused_window(defocus, 12, detail) == (0, 0)
