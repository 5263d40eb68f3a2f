"""Progressive patch training with Restormer's option names, for any network trained by DualPixelModel.

In ``datasets: train:``: ``gt_size`` (the largest patch, what the loader crops), ``gt_sizes`` (patch size of each
stage), ``mini_batch_sizes`` (per-GPU batch of each stage) and ``iters`` (iterations of each stage). The loader
delivers ``batch_size_per_gpu`` crops of ``gt_size``; at iteration ``t`` the stage is the first whose cumulative
iteration count reaches ``t`` (the last stage after them all), and the batch is cut to ``mini_batch_sizes[j]``
random samples and one random ``gt_sizes[j]`` window at the same place in every image tensor (lq, gt, lqC, ...).
The stage depends on the iteration only, so resuming continues in the right stage.
"""

import bisect
import random
from dataclasses import dataclass

import torch

OPTION_NAMES = ('mini_batch_sizes', 'iters', 'gt_sizes')


@dataclass(frozen=True)
class Stage:
    """Stage ``index`` of progressive training: from iteration ``first_iter`` on, crops of ``patch_size`` pixels in
    batches of ``batch_size`` (Restormer's ``gt_sizes`` and ``mini_batch_sizes``)."""

    index: int
    first_iter: int
    patch_size: int
    batch_size: int


class ProgressiveSchedule:
    """The stages of ``datasets: train:`` (checked against the loader's batch and crop sizes)."""

    def __init__(self, train_set_opt: dict):
        self.iters = [int(n) for n in train_set_opt['iters']]
        self.patch_sizes = [int(s) for s in train_set_opt['gt_sizes']]
        self.batch_sizes = [int(b) for b in train_set_opt['mini_batch_sizes']]
        self.max_patch = int(train_set_opt['gt_size'])
        self.loader_batch = int(train_set_opt['batch_size_per_gpu'])
        self.stage_ends = [sum(self.iters[: i + 1]) for i in range(len(self.iters))]

    @classmethod
    def from_options(cls, opt: dict):
        """The schedule of ``opt['datasets']['train']``, or None when it sets no progressive option."""
        train_set = opt.get('datasets', {}).get('train', {})
        given = [name for name in OPTION_NAMES if train_set.get(name) is not None]
        if not given:
            return None
        missing = [name for name in OPTION_NAMES if name not in given]
        if missing:
            raise ValueError(
                f'datasets: train: progressive training needs {", ".join(OPTION_NAMES)} together; '
                f'{", ".join(given)} given, {", ".join(missing)} missing'
            )
        schedule = cls(train_set)
        schedule.check()
        return schedule

    def check(self):
        """Lists of one length, positive entries, patches within the loader's crops, batches within its batch."""
        lengths = {len(self.iters), len(self.patch_sizes), len(self.batch_sizes)}
        if len(lengths) != 1:
            raise ValueError(
                'datasets: train: mini_batch_sizes, iters and gt_sizes need one entry per stage, got '
                f'{len(self.batch_sizes)}, {len(self.iters)} and {len(self.patch_sizes)} entries'
            )
        if min(self.iters + self.patch_sizes + self.batch_sizes) <= 0:
            raise ValueError('datasets: train: mini_batch_sizes, iters and gt_sizes must be positive')
        if max(self.patch_sizes) > self.max_patch:
            raise ValueError(
                f'datasets: train: gt_sizes {self.patch_sizes} go beyond gt_size {self.max_patch}, the size the '
                'loader crops: set gt_size to the largest of gt_sizes'
            )
        if max(self.batch_sizes) > self.loader_batch:
            raise ValueError(
                f'datasets: train: mini_batch_sizes {self.batch_sizes} go beyond batch_size_per_gpu '
                f'{self.loader_batch}, the batch the loader delivers: set batch_size_per_gpu to at least '
                f'{max(self.batch_sizes)}'
            )

    def mismatch_with(self, total_iter: int) -> str | None:
        """What happens when the stages do not add up to ``train: total_iter``, or None when they do."""
        planned = self.stage_ends[-1]
        if planned < total_iter:
            return (
                f'datasets: train: iters add up to {planned} but train: total_iter is {total_iter}: the last stage '
                f'(patch {self.patch_sizes[-1]}, batch {self.batch_sizes[-1]}) continues to the end'
            )
        if planned > total_iter:
            unreached = [j for j, end in enumerate(self.stage_ends) if end - self.iters[j] >= total_iter]
            return (
                f'datasets: train: iters add up to {planned} but train: total_iter is {total_iter}: training stops '
                f'in stage {self.stage_index(total_iter)}'
                + (f' and never reaches stages {unreached}' if unreached else '')
            )
        return None

    def stage_index(self, iteration: int) -> int:
        return min(bisect.bisect_left(self.stage_ends, iteration), len(self.stage_ends) - 1)

    def stage(self, iteration: int) -> Stage:
        """The stage training iteration ``iteration`` (counted from 1) belongs to."""
        j = self.stage_index(iteration)
        first = self.stage_ends[j - 1] + 1 if j else 1
        return Stage(j, first, self.patch_sizes[j], self.batch_sizes[j])


def cut_batch(tensors: dict[str, torch.Tensor], stage: Stage) -> dict[str, torch.Tensor]:
    """``stage.batch_size`` random samples of the batch, and one random ``stage.patch_size`` window in all of them.

    Every tensor is (N, C, H, W) with the same N, H and W; the same samples and the same window are taken from each,
    so inputs and targets stay aligned whatever their channel counts.
    """
    first = next(iter(tensors.values()))
    batch, height, width = first.shape[0], first.shape[-2], first.shape[-1]
    for name, tensor in tensors.items():
        if tensor.shape[0] != batch or tensor.shape[-2:] != first.shape[-2:]:
            raise ValueError(f'progressive training: {name} is {tuple(tensor.shape)}, unlike {tuple(first.shape)}')
    if stage.batch_size < batch:
        keep = sorted(random.sample(range(batch), k=stage.batch_size))
        tensors = {name: tensor[keep] for name, tensor in tensors.items()}
    size = stage.patch_size
    if size < height or size < width:
        top = random.randint(0, max(height - size, 0))
        left = random.randint(0, max(width - size, 0))
        tensors = {name: tensor[..., top : top + size, left : left + size] for name, tensor in tensors.items()}
    return tensors
