"""One rank of a CPU data-parallel run, started by ``tests/integration/test_training.py`` through torchrun or
``python -m torch.distributed.launch``:

    torchrun --nproc_per_node=2 tests/ddp_worker.py -opt X.yml --launcher pytorch

It goes through BasicSR's own ``parse_options`` (so ``--launcher pytorch`` runs ``init_dist`` and with it the
plugin's ``_init_dist_pytorch``, and ``--local-rank=N`` from torch.distributed.launch must be accepted) and
``build_model``, feeds each rank its own random batches, takes a few optimiser steps and writes
``<DDP_WORKER_OUT>/rank<r>.pt`` with the weights (float64, flattened) after DDP set-up and after training, the
checksum of the batches this rank saw, its command line as launched and as parsed, and the distributed settings
BasicSR derived.
"""

import os
import os.path as osp
import sys

ARGV_AS_LAUNCHED = list(sys.argv)  # before the plugin's compat fix rewrites --local-rank
ROOT = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
sys.path.insert(0, ROOT)  # this checkout's plugin

# isort: off
import dmtnet_arch  # noqa: E402,F401  (before basicsr: compat fixes, registration)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from basicsr.utils.options import parse_options  # noqa: E402
# isort: on

STEPS = 3


def flat_weights(model) -> torch.Tensor:
    net = model.get_bare_model(model.net_g)
    return torch.cat([p.detach().double().flatten() for p in net.parameters()])


def main():
    out_dir = os.environ['DDP_WORKER_OUT']
    opt, _ = parse_options(out_dir, is_train=True)
    rank = opt['rank']
    model = build_model(opt)
    initial = flat_weights(model)
    generator = torch.Generator().manual_seed(1000 + rank)  # different data on every rank
    batch_checksum = 0.0
    for step in range(1, STEPS + 1):
        lq = torch.rand(1, 6, 32, 32, generator=generator)
        gt = torch.rand(1, 3, 32, 32, generator=generator)
        batch_checksum += float(lq.double().sum() + gt.double().sum())
        model.feed_data({'lq': lq, 'gt': gt})
        model.optimize_parameters(step)
    result = {
        'rank': rank,
        'world_size': opt['world_size'],
        'dist': opt['dist'],
        'backend': dist.get_backend(),
        'wrapped': type(model.net_g).__name__,
        'initial': initial,
        'final': flat_weights(model),
        'batch_checksum': batch_checksum,
        'argv_as_launched': ARGV_AS_LAUNCHED,
        'argv_parsed': list(sys.argv),
    }
    torch.save(result, osp.join(out_dir, f'rank{rank}.pt'))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
