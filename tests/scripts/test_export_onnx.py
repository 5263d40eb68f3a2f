"""scripts/export_onnx.py checks its arguments before it reads the option file (no onnxruntime needed)."""

import re

import pytest

import dmtnet_arch  # noqa: F401  (registers the plugin)
from tests.helpers import load_script


# one case a line, aligned by hand: clearer than the formatter's layout
@pytest.mark.parametrize(
    ('flags', 'message'),
    [(['--height', '0', '--width', '64'], '--height must be a positive number of pixels, got 0'),
     (['--height', '64', '--width', '-3'], '--width must be a positive number of pixels, got -3'),
     (['--opset', '16'], '--opset must be at least 17')],
)  # fmt: skip
def test_export_onnx_names_a_bad_size_or_opset_before_building(tmp_path, flags, message):
    script = load_script('export_onnx')
    argv = ['-opt', str(tmp_path / 'absent.yml'), '--output', str(tmp_path / 'm.onnx'), *flags]
    with pytest.raises(ValueError, match=re.escape(message)):  # before the (absent) option file is read
        script.main(argv)
