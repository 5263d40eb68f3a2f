"""Leaderboard in the DPDD table format: every model's test set through the plugin's own test pipeline.

:mod:`.report` runs each test option file in its own process (:mod:`.runner`, started as ``python -m
dmtnet_arch.tools.leaderboard``) and writes the tables and the figure. See docs/leaderboard.md.
"""

from dmtnet_arch.tools.leaderboard.report import failure_reason, run_leaderboard

__all__ = ['failure_reason', 'run_leaderboard']
