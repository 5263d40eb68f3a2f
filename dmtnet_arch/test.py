"""Test entry: ``python dmtnet_arch/test.py -opt options/test_DMTNet_B.yml``; results land in ``results/<name>``."""

import os.path as osp
import sys

ROOT = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
sys.path.insert(0, ROOT)  # this checkout's plugin, not an older installed copy

# isort: off
import dmtnet_arch  # noqa: E402,F401  (before basicsr: applies the compat fixes)
from dmtnet_arch import compat  # noqa: E402
from basicsr.test import test_pipeline  # noqa: E402
# isort: on

if __name__ == '__main__':
    compat.run_then_leave_process_group(test_pipeline, ROOT)
