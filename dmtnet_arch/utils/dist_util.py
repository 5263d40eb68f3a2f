"""Rank helpers for evaluation under ``torch.distributed`` (no-ops in a single process)."""

import torch.distributed as dist
from torch.utils.data import DataLoader, Subset


def gather_on_first_rank(obj) -> list | None:
    """Every rank's ``obj`` in rank order on rank 0, None on the others; ``[obj]`` without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def from_first_rank(obj):
    """Rank 0's ``obj`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_share(dataloader, rank: int, world_size: int):
    """This rank's validation images: every ``world_size``-th one from the ``rank``-th on."""
    if world_size == 1:
        return dataloader
    share = Subset(dataloader.dataset, range(rank, len(dataloader.dataset), world_size))
    return DataLoader(
        share,
        batch_size=1,
        shuffle=False,
        num_workers=dataloader.num_workers,
        collate_fn=dataloader.collate_fn,
        pin_memory=dataloader.pin_memory,
    )
