"""Training entry: ``python dmtnet_arch/train.py -opt options/train_DMTNet_B.yml [--launcher pytorch] [--auto_resume]``.

Registers the plugin, then hands over to BasicSR's own training pipeline with the repository as root, so
``experiments/`` and ``tb_logger/`` land in the repository whatever the working directory.
"""

import os.path as osp
import sys

ROOT = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
sys.path.insert(0, ROOT)  # this checkout's plugin, not an older installed copy

# isort: off
import dmtnet_arch  # noqa: E402,F401  (before basicsr: applies the compat fixes)
from dmtnet_arch import compat  # noqa: E402
from basicsr import train  # noqa: E402
# isort: on

if __name__ == '__main__':
    compat.run_then_leave_process_group(train.train_pipeline, ROOT)
