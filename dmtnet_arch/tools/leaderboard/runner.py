"""One model of the leaderboard, in its own process (``python -m dmtnet_arch.tools.leaderboard``).

The process parses the test option file with BasicSR's ``parse_options``, builds its datasets and model with
BasicSR's builders and calls ``model.validation`` as ``basicsr/test.py`` does; the per-category means are the
metric files that the validation writes. It also times ``model.test`` per image, reads its own peak memory, and
counts parameters and MACs at 1680 x 1120.
"""

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils import get_root_logger, make_exp_dirs
from basicsr.utils.options import parse_options

from dmtnet_arch.models.dual_pixel_model import metric_files_stem, read_metric_files
from dmtnet_arch.tools.complexity import count_macs, count_parameters
from dmtnet_arch.utils.checkpoint import describe_weights, resolve_weights
from dmtnet_arch.utils.cli_util import parse_size
from dmtnet_arch.utils.device_util import PeakMemory, synchronize
from dmtnet_arch.utils.file_util import write_bytes_atomically
from dmtnet_arch.utils.options import read_option_file, write_option_file

COMPLEXITY_SIZE = (1120, 1680)  # height, width of DPDD images
METRIC_TYPES = {
    'calculate_dp_psnr': 'PSNR',
    'calculate_dp_ssim': 'SSIM',
    'calculate_dp_mae': 'MAE',
    'calculate_dp_lpips': 'LPIPS',
}


def options_with_weights(option_file: str, run_root: str) -> tuple[str, bool, str]:
    """(option file to test, trained, weights description). Without trained weights (no
    ``path: pretrain_network_g``, or no such file) a copy of the option file under ``run_root/options`` asks for
    the initial weights explicitly (``allow_random_weights``), so the model still gets its other columns."""
    opt = read_option_file(option_file)
    path = opt.get('path') or {}
    weights = path.get('pretrain_network_g')
    if weights and Path(resolve_weights(weights)).is_file():
        return option_file, True, describe_weights(weights)
    reason = f'untrained (no file {weights})' if weights else 'untrained (no path: pretrain_network_g)'
    opt['path'] = {**path, 'pretrain_network_g': None, 'allow_random_weights': True}
    return str(write_option_file(Path(run_root) / 'options' / Path(option_file).name, opt)), False, reason


class TestTimer:
    """Wraps ``model.test`` to time each call (device synchronised) and record the network's input shapes."""

    def __init__(self, model):
        self.model, self.test, self.seconds, self.input_shapes = model, model.test, [], []
        model.get_bare_model(model.net_g).register_forward_pre_hook(self.record_input)
        model.test = self

    def record_input(self, _module, args):
        self.input_shapes.append(tuple(args[0].shape))

    def __call__(self):
        synchronize(self.model.device)
        start = time.perf_counter()
        self.test()
        synchronize(self.model.device)
        self.seconds.append(time.perf_counter() - start)

    def latency_ms(self) -> float | None:
        """Median per image, the first (warm-up) call left out when there are others."""
        timed = self.seconds[1:] or self.seconds
        return statistics.median(timed) * 1e3 if timed else None


def test_device() -> str:
    """Where ``basicsr/test.py``'s model runs: the GPU when there is one."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def peak_memory_mib() -> tuple[float, str]:
    """The test process's peak so far (never reset: it covers every test set) and what kind of memory it is."""
    probe = PeakMemory(test_device(), reset=False)
    return probe.peak_gib() * 1024, probe.kind


def read_summary(stem: Path, metric_opts: dict) -> tuple[dict, dict, dict]:
    """Per-group means, image counts and protocols of a validation's metric files, by leaderboard label (PSNR, ...)."""
    labels = {name: METRIC_TYPES.get(opt['type'], name) for name, opt in metric_opts.items()}
    written = read_metric_files(stem)
    means = {
        group: {labels[name]: value for name, value in values.items() if name in labels}
        for group, values in written.groups.items()
    }
    protocols = {labels[name]: protocol for name, protocol in written.protocols.items() if name in labels}
    return means, written.counts, protocols


def measure_complexity(net, channels: int | None) -> dict:
    """Parameters and MACs at 1680 x 1120 for an input of the channels the network was given in the test."""
    result = {'params': count_parameters(net), 'macs': None, 'macs_note': ''}
    if channels is None:
        result['macs_note'] = 'no test image reached the network'
        return result
    try:
        result['macs'] = count_macs(net, (1, channels, *COMPLEXITY_SIZE))
    except Exception as error:  # a network the meta device cannot run still gets its other columns
        result['macs_note'] = f'not counted: {type(error).__name__}: {error}'
    return result


def speed_at_size(model, timer: TestTimer, channels: int, size: tuple[int, int], bf16: bool, repeats: int = 3):
    """Latency and peak memory of ``model.test()`` on a random (1, channels, height, width) input: the same test
    path as the images (tiling, padding), bf16 autocast through the model's ``amp`` when asked."""
    if bf16:
        model.amp = 'bf16'
    timer.seconds.clear()
    with PeakMemory(test_device()) as memory:
        for _ in range(repeats + 1):  # the first is the warm-up
            model.lq = torch.rand(1, channels, *size, device=model.device)
            model.test()
            del model.output
    return {'speed_latency_ms': timer.latency_ms(), 'speed_peak_memory_mib': memory.peak_gib() * 1024}


def parse_test_options(option_file, root: str) -> dict:
    """The test options of ``option_file`` as ``basicsr/test.py`` gets them (BasicSR's ``parse_options``, paths
    under ``root``, this plugin's checks). ``parse_options`` reads only the command line, so ``sys.argv`` is set to
    the command that would test this file; this child process runs nothing else."""
    sys.argv = [sys.argv[0], '-opt', str(option_file)]
    opt, _ = parse_options(root, is_train=False)
    return opt


def evaluate(option_file: str, run_root: str, with_lpips: bool, speed_size=None, bf16=False) -> list[dict]:
    """Test the model of ``option_file`` on each of its test sets, as basicsr/test.py does, measuring as it goes;
    with ``speed_size`` (height, width), also time ``model.test()`` at that size."""
    tested_file, trained, weights = options_with_weights(option_file, run_root)
    opt = parse_test_options(tested_file, run_root)
    if not opt.get('val', {}).get('metrics'):
        raise ValueError(f'{option_file}: val: metrics is empty; the leaderboard needs the PSNR, SSIM and MAE metrics')
    opt['val']['save_img'] = False
    if with_lpips:
        opt['val']['metrics']['lpips'] = {'type': 'calculate_dp_lpips', 'better': 'lower'}
    make_exp_dirs(opt)
    get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=str(Path(opt['path']['log']) / 'test.log'))
    loaders = []
    for _, dataset_opt in sorted(opt['datasets'].items()):
        dataset = build_dataset(dataset_opt)
        loaders.append(
            build_dataloader(
                dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=False, sampler=None, seed=opt['manual_seed']
            )
        )
    model = build_model(opt)
    timer = TestTimer(model)
    if test_device() == 'cuda':
        PeakMemory('cuda').start()  # the GPU's peak from here; a CPU's is the whole test process's
    results = []
    for loader in loaders:
        dataset = loader.dataset.opt['name']
        timer.seconds.clear()
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=False)
        stem = metric_files_stem(opt, dataset, opt['name'])
        means, counts, protocols = read_summary(stem, opt['val']['metrics'])
        results.append(
            {
                'dataset': dataset,
                'groups': means,
                'images': counts,
                'protocols': protocols,
                'latency_ms': timer.latency_ms(),
            }
        )
    memory, memory_kind = peak_memory_mib()
    channels = timer.input_shapes[0][1] if timer.input_shapes else None
    shared = {
        'option_file': option_file,
        'name': opt['name'],
        'arch': opt['network_g']['type'],
        'label': '-'.join(str(v) for v in (opt['network_g']['type'], opt['network_g'].get('variant')) if v),
        'trained': trained,
        'weights': weights,
        'image_sizes': sorted({f'{s[-1]}x{s[-2]}' for s in timer.input_shapes}),
        'peak_memory_mib': memory,
        'memory_kind': memory_kind,
        **measure_complexity(model.get_bare_model(model.net_g), channels),
    }
    if speed_size and channels:
        shared.update(speed_at_size(model, timer, channels, speed_size, bf16))
    return [{**shared, **result} for result in results]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test one option file for the leaderboard; write its rows as JSON.')
    parser.add_argument('option_file')
    parser.add_argument('run_root')
    parser.add_argument('json_out')
    parser.add_argument('--lpips', action='store_true')
    parser.add_argument('--speed-size', type=parse_size)
    parser.add_argument('--bf16', action='store_true')
    return parser


def main(argv=None) -> int:
    """Child-process entry: ``python -m dmtnet_arch.tools.leaderboard OPTION RUN_ROOT JSON [--lpips] [--speed-size HxW]
    [--bf16]``."""
    args = build_parser().parse_args(argv)
    results = evaluate(args.option_file, args.run_root, args.lpips, args.speed_size, args.bf16)
    write_bytes_atomically(args.json_out, json.dumps(results, indent=1).encode())
    return 0
