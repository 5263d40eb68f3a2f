"""Learning-rate schedules BasicSR 1.4.2 lacks, looked up by the ``train: scheduler: type`` users write.

``build_scheduler`` returns None for a type it does not know, so the model falls back to BasicSR's own
``setup_schedulers`` (MultiStepRestartLR, CosineAnnealingRestartLR).
"""

import bisect
import math

from torch.optim.lr_scheduler import LRScheduler


class CosineAnnealingRestartCyclicLR(LRScheduler):
    """Cosine annealing with restarts where every period has its own floor (Restormer's cyclic schedule).

    In period ``i`` (positions ``t`` with ``end_{i-1} < t <= end_i``, ``end_i`` the cumulative sum of ``periods``):
    ``lr = eta_mins[i] + restart_weights[i] * (base_lr - eta_mins[i]) * c``, with the cosine factor
    ``c = (1 + cos(pi * (t - end_{i-1}) / periods[i])) / 2``.
    Restormer's dual-pixel recipe, periods [92000, 208000] with eta_mins [3e-4, 1e-6] and lr 3e-4, holds the
    learning rate at 3e-4 for 92k iterations, then anneals it to 1e-6. After the last period the learning rate
    stays at the last period's floor (``eta_mins[-1]``).

    The state saved in a training state is the position only: resuming with a changed schedule in the option file
    follows the option file.
    """

    def __init__(self, optimizer, periods, restart_weights=(1,), eta_mins=(0,), last_epoch=-1):
        check_cyclic_options(periods, restart_weights, eta_mins)
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in restart_weights]
        self.eta_mins = [float(e) for e in eta_mins]
        self.period_ends = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def period_index(self, iteration: int) -> int:
        """The period holding ``iteration``: the first whose end is at or after it."""
        return bisect.bisect_left(self.period_ends, iteration)

    def get_lr(self):
        t = self.last_epoch
        i = self.period_index(t)
        if i == len(self.periods):
            return [self.eta_mins[-1] for _ in self.base_lrs]
        start = self.period_ends[i - 1] if i else 0
        cosine = 0.5 * (1 + math.cos(math.pi * (t - start) / self.periods[i]))
        eta_min, weight = self.eta_mins[i], self.restart_weights[i]
        return [eta_min + weight * (base_lr - eta_min) * cosine for base_lr in self.base_lrs]

    def state_dict(self):
        schedule = ('periods', 'restart_weights', 'eta_mins', 'period_ends')
        return {key: value for key, value in super().state_dict().items() if key not in schedule}


def check_cyclic_options(periods, restart_weights, eta_mins):
    """Errors name the option at fault."""
    prefix = 'train: scheduler (CosineAnnealingRestartCyclicLR):'
    if not periods or any(int(p) <= 0 for p in periods):
        raise ValueError(f'{prefix} periods must be a non-empty list of positive iteration counts, got {periods}')
    for name, values in (('restart_weights', restart_weights), ('eta_mins', eta_mins)):
        if len(values) != len(periods):
            raise ValueError(
                f'{prefix} {name} has {len(values)} entries but periods has {len(periods)}: give one per period '
                f'(periods {list(periods)}, {name} {list(values)})'
            )


SCHEDULERS = {'CosineAnnealingRestartCyclicLR': CosineAnnealingRestartCyclicLR}


def build_scheduler(optimizer, scheduler_opt: dict):
    """A scheduler of this plugin for ``scheduler_opt`` (with its ``type``), or None when BasicSR has the type."""
    options = dict(scheduler_opt)
    scheduler_class = SCHEDULERS.get(options.pop('type'))
    return scheduler_class(optimizer, **options) if scheduler_class else None
