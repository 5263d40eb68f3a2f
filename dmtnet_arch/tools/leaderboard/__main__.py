"""``python -m dmtnet_arch.tools.leaderboard OPTION RUN_ROOT JSON ...``: one model, in the child process."""

from dmtnet_arch import compat
from dmtnet_arch.tools.leaderboard.runner import main

compat.run_then_leave_process_group(main)
