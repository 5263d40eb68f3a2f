"""BasicSR model for dual-pixel deblurring: SRModel plus safe steps, mixed precision, 16-bit metrics and outputs."""

import csv
import math
import os
import os.path as osp
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info, master_only
from basicsr.utils.registry import MODEL_REGISTRY
from tqdm import tqdm

from dmtnet_arch.compat import PluginModelFixes
from dmtnet_arch.models.lr_scheduler import build_scheduler
from dmtnet_arch.models.progressive_training import ProgressiveSchedule, cut_batch
from dmtnet_arch.utils.device_util import AMP_NAMES, autocast, check_amp
from dmtnet_arch.utils.dist_util import from_first_rank, gather_on_first_rank, rank_share
from dmtnet_arch.utils.file_util import csv_bytes, write_bytes_atomically
from dmtnet_arch.utils.img_util import png16_bytes
from dmtnet_arch.utils.options import Option
from dmtnet_arch.utils.tile_util import tiled_forward


def describe(error: Exception) -> str:
    return f'{type(error).__name__}: {error}'


def compile_for_training(net: torch.nn.Module, compile_opt, device: torch.device) -> torch.nn.Module:
    """``net`` through ``torch.compile`` for ``train: compile`` (true: inductor; a string: that backend), else ``net``.

    The compiled module shares ``net``'s parameters, so the optimizer, EMA and checkpoints keep using ``net``
    itself (a compiled module's state dict would prefix every key with ``_orig_mod.``). What is known to fail
    before the first step is refused here, naming the option."""
    if not compile_opt:
        return net
    backend = 'inductor' if compile_opt is True else str(compile_opt)
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise ValueError(
            f'train: compile: unknown torch.compile backend {backend!r}; use true (inductor), false, or one of '
            f'{", ".join(torch._dynamo.list_backends())}'
        )
    if not torch._dynamo.is_dynamo_supported():
        raise ValueError(
            f'train: compile: torch.compile does not support this Python with torch {torch.__version__}; '
            'set train: compile: false'
        )
    if backend == 'inductor' and device.type == 'cpu' and not cpp_compiler():
        raise ValueError(
            'train: compile: inductor compiles C++ on a CPU and no C++ compiler was found (g++, clang++ or $CXX); '
            'install one (e.g. apt install g++) or set train: compile: false'
        )
    get_root_logger().info(
        f'train: compile: the training forward runs through torch.compile (backend {backend}); '
        'the first iteration compiles it'
    )
    return torch.compile(net, backend=backend)


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on a CPU, if any."""
    return next(
        (found for name in (os.environ.get('CXX'), 'g++', 'c++', 'clang++') if name and (found := shutil.which(name))),
        None,
    )


def is_compile_error(error: BaseException) -> bool:
    """Raised by dynamo or a compiler backend rather than by the network's own code."""
    return isinstance(error, torch._dynamo.exc.TorchDynamoException) or type(error).__module__.startswith(
        ('torch._dynamo', 'torch._inductor')
    )


class EvaluationError(RuntimeError):
    """Validation or testing failed on some rank; raised on every rank, naming each failure."""


def stop_on_failures(failures: list | None, dataset_name: str, cause: Exception | None):
    """Raise :class:`EvaluationError` when ``failures`` (``(rank, description)`` pairs) is not empty."""
    if not failures:
        return
    _, world_size = get_dist_info()
    if world_size == 1:
        raise EvaluationError(f'Evaluating {dataset_name} failed: {failures[0][1]}') from cause
    listed = '; '.join(f'rank {rank}: {text}' for rank, text in failures)
    raise EvaluationError(f'Evaluating {dataset_name} stopped on all {world_size} ranks. {listed}') from cause


def summarise(records: list[dict], metric_names: list[str]) -> dict[str, dict[str, float]]:
    """Mean of each metric per category, and over all images as 'combined'."""
    groups = defaultdict(list)
    for record in records:
        groups['combined'].append(record)
        if record['category']:
            groups[record['category']].append(record)
    return {group: {m: float(np.mean([r[m] for r in rows])) for m in metric_names} for group, rows in groups.items()}


# The metric files' format: the summary's metric columns are ``<metric name> (<protocol>)``.
SUMMARY_COLUMN = re.compile(r'(?P<metric>.+) \((?P<protocol>[^()]+)\)')


def summary_column(metric: str, protocol: str) -> str:
    return f'{metric} ({protocol})'


@dataclass
class MetricFiles:
    """What :meth:`DualPixelModel.write_metric_files` wrote: per-image rows (``image`` -> ``category`` and each
    metric), per-group means (``group`` -> metric -> mean), image counts per group and each metric's protocol."""

    images: dict[str, dict]
    groups: dict[str, dict[str, float]]
    counts: dict[str, int]
    protocols: dict[str, str]


def read_metric_files(stem) -> MetricFiles:
    """Read ``<stem>.csv`` and ``<stem>_summary.csv`` as written by :meth:`DualPixelModel.write_metric_files`, e.g.
    ``results/<name>/metrics_<dataset>``; the metrics are those of the files' columns."""
    images = {}
    with open(f'{stem}.csv', newline='') as f:
        for row in csv.DictReader(f):
            name, category = row.pop('image'), row.pop('category')
            images[name] = {'category': category, **{metric: float(value) for metric, value in row.items()}}
    groups, counts, protocols = {}, {}, {}
    with open(f'{stem}_summary.csv', newline='') as f:
        for row in csv.DictReader(f):
            group = row.pop('group')
            counts[group] = int(row.pop('images'))
            columns = {SUMMARY_COLUMN.fullmatch(column): value for column, value in row.items()}
            groups[group] = {match['metric']: float(value) for match, value in columns.items() if match}
            protocols.update({match['metric']: match['protocol'] for match in columns if match})
    return MetricFiles(images, groups, counts, protocols)


def metric_files_stem(opt: dict, dataset_name: str, current_iter) -> Path:
    """Where the metric files of one validation go: ``results/<name>/metrics_<dataset>`` at test time,
    ``experiments/<name>/metrics/metrics_<dataset>_<iter>`` in training (``.csv`` and ``_summary.csv`` added)."""
    if opt['is_train']:
        return Path(opt['path']['experiments_root'], 'metrics', f'metrics_{dataset_name}_{current_iter}')
    return Path(opt['path']['results_root'], f'metrics_{dataset_name}')


@MODEL_REGISTRY.register()
class DualPixelModel(PluginModelFixes, SRModel):
    """DMTNet (or any 6-channel dual-pixel network) trained and tested through BasicSR's pipelines.

    train: ``pixel_opt`` (CharbonnierLoss in the paper's options), ``scheduler``, ``ema_decay`` as SRModel; ``optim_g``
    Adam or AdamW; plus ``grad_clip`` (max gradient norm), ``amp`` (bf16 | fp16), ``compile`` (torch.compile of the
    training forward and backward), ``max_nonfinite_steps`` (default 5),
    scheduler ``CosineAnnealingRestartCyclicLR`` and progressive patch training (``datasets: train:``
    ``mini_batch_sizes``, ``iters``, ``gt_sizes``), both with Restormer's option names (docs/training.md).
    val: ``metrics`` with types calculate_dp_psnr / calculate_dp_ssim / calculate_dp_mae, optional ``tile`` and
    ``tile_overlap``. Images are 16-bit PNGs; metrics run on float outputs, never on BasicSR's uint8 path.
    """

    # batch tensors a progressive stage cuts, when the model holds them (IFANModel keeps its views as left, right)
    BATCH_TENSORS = ('lq', 'gt', 'lqC', 'left', 'right')

    per_image_tensors = ('lq', 'gt', 'output')  # released after each validation image; a subclass adds its own

    # train: and val: keys, checked when the option file is loaded (dmtnet_arch/utils/options.py); the blocks inside
    # (optim_*, scheduler, *_opt, metrics) are checked against what their type takes. A subclass adds its own keys.
    option_schema = {
        'train': {
            'ema_decay': Option(float, minimum=0, below=1),  # 1: the EMA never moves; above: it diverges
            'optim_g': Option(dict, nullable=False),
            'scheduler': Option(dict),
            'total_iter': Option(int, nullable=False, minimum=1),
            'warmup_iter': Option(int),
            'pixel_opt': Option(dict),
            'grad_clip': Option(float, minimum=0),
            'amp': Option((str, bool), choices=(*AMP_NAMES, False)),
            'compile': Option((bool, str)),  # true (inductor), false, or a torch.compile backend name
            'max_nonfinite_steps': Option(int, minimum=1),
        },
        'val': {
            'val_freq': Option(int, minimum=1),
            'save_img': Option(bool),
            'suffix': Option(str),
            'metrics': Option(dict),
            'pbar': Option(bool),
            'tile': Option(int, minimum=1),
            'tile_overlap': Option(int, minimum=0),
        },
    }

    def init_training_settings(self):
        self.progressive = ProgressiveSchedule.from_options(self.opt)
        self.progressive_stage = None
        if self.progressive and (mismatch := self.progressive.mismatch_with(int(self.opt['train']['total_iter']))):
            get_root_logger().warning(mismatch)
        self.check_crop_size()
        super().init_training_settings()
        train_opt = self.opt['train']
        self.grad_clip = train_opt.get('grad_clip')
        self.max_nonfinite_steps = train_opt.get('max_nonfinite_steps', 5)
        self.nonfinite_steps = 0
        self.log_dict = {}  # BasicSR's logger reads it even when every step so far was skipped
        amp = train_opt.get('amp') or None
        if amp not in (None, *AMP_NAMES):
            raise ValueError(f'train: amp must be bf16, fp16 or absent, got {amp!r}')
        check_amp(self.device, amp, 'train: amp')
        self.amp = amp
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=amp == 'fp16')
        self.net_g_train = compile_for_training(self.net_g, train_opt.get('compile', False), self.device)
        self.compiled_once = False

    def check_crop_size(self):
        """Training crops smaller than the network's working size would be mostly padding: refuse them."""
        multiple = getattr(self.get_bare_model(self.net_g), 'size_multiple', 1)
        gt_size = self.opt.get('datasets', {}).get('train', {}).get('gt_size')
        option = 'gt_size'
        if self.progressive:
            gt_size, option = min(self.progressive.patch_sizes), 'gt_sizes'
        if gt_size is not None and gt_size < multiple:
            raise ValueError(
                f'datasets: train: {option} {gt_size} is smaller than the {multiple} x {multiple} pixels '
                f'{type(self.get_bare_model(self.net_g)).__name__} works on (it pads every input to a multiple of '
                f'{multiple}: patch size x the window and coarsest-scale multiple); the crops would be mostly '
                f'padding. Use {option} >= {multiple}.'
            )

    def setup_schedulers(self):
        """This plugin's schedulers (dmtnet_arch/models/lr_scheduler.py) by type, BasicSR's for the others."""
        scheduler_opt = self.opt['train']['scheduler']
        schedulers = [build_scheduler(optimizer, scheduler_opt) for optimizer in self.optimizers]
        if None in schedulers:
            return super().setup_schedulers()
        self.schedulers.extend(schedulers)

    def cut_to_progressive_stage(self, current_iter: int):
        """Progressive training: cut the fed batch to this iteration's batch and patch size (same samples and
        window in every image tensor). Logs each stage as training enters it, also after resuming."""
        if not self.progressive:
            return
        stage = self.progressive.stage(current_iter)
        if stage.index != self.progressive_stage:
            self.progressive_stage = stage.index
            get_root_logger().info(
                f'Progressive training: iteration {current_iter} is in stage {stage.index} (from iteration '
                f'{stage.first_iter}): patch {stage.patch_size}, batch {stage.batch_size} per GPU'
            )
        names = [name for name in self.BATCH_TENSORS if isinstance(getattr(self, name, None), torch.Tensor)]
        for name, tensor in cut_batch({name: getattr(self, name) for name in names}, stage).items():
            setattr(self, name, tensor)

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """BasicSR 1.4.2 knows Adam only; AdamW is Restormer's recipe (decoupled weight decay)."""
        if optim_type == 'AdamW':
            return torch.optim.AdamW(params, lr, **kwargs)
        if optim_type != 'Adam':
            raise ValueError(f'train: optim_g: type must be Adam or AdamW, got {optim_type!r}')
        return super().get_optimizer(optim_type, params, lr, **kwargs)

    def autocast(self):
        """Autocast to ``train: amp`` for training and validation (bf16 on CPU and GPU, fp16 on GPU); none at
        test time unless a tool sets ``self.amp``."""
        return autocast(self.device, getattr(self, 'amp', None))

    def training_forward(self, *args, **kwargs):
        """The network's training forward: compiled with ``train: compile``, whose first call compiles (errors then
        name the option); validation and testing run the bare network (other sizes would recompile)."""
        net = getattr(self, 'net_g_train', None)
        net = self.net_g if net is None else net  # not `or`: a module's truth value asks for its len()
        if net is self.net_g or self.compiled_once:
            return net(*args, **kwargs)
        try:
            output = net(*args, **kwargs)
        except Exception as error:
            if not is_compile_error(error):
                raise
            raise RuntimeError(
                f'train: compile: torch.compile could not compile {type(self.get_bare_model(self.net_g)).__name__} '
                f'on {self.device}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}. '
                'Set train: compile: false to train without it.'
            ) from error
        self.compiled_once = True
        return output

    def loss_is_finite_everywhere(self, loss: torch.Tensor) -> bool:
        """True when the loss is finite on every rank, so that all ranks skip a step together."""
        finite = torch.isfinite(loss.detach()).float()
        if self.opt['dist']:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    def skip_nonfinite_step(self, current_iter: int):
        """Drop this step's update; stop after ``max_nonfinite_steps`` in a row, before anything is saved."""
        self.nonfinite_steps += 1
        self.optimizer_g.zero_grad(set_to_none=True)
        get_root_logger().warning(
            f'Iteration {current_iter}: loss or gradient is NaN or infinite; step skipped '
            f'({self.nonfinite_steps} in a row, limit {self.max_nonfinite_steps}).'
        )
        if self.nonfinite_steps >= self.max_nonfinite_steps:
            raise RuntimeError(
                f'Training stopped at iteration {current_iter}: the loss or gradient was NaN or infinite for '
                f'{self.nonfinite_steps} iterations in a row. The last saved checkpoint is intact. Try a lower '
                'train: optim_g: lr, train: grad_clip (e.g. 0.01), or amp: bf16 / no amp instead of fp16, and '
                'check the training data for corrupt images.'
            )

    def training_losses(self) -> dict[str, torch.Tensor]:
        """The named loss terms of one training step (their sum is minimised); a recipe's model overrides this."""
        with self.autocast():
            self.output = self.training_forward(self.lq)
        return {'l_pix': self.cri_pix(self.output.float(), self.gt)}

    def optimize_parameters(self, current_iter):
        self.cut_to_progressive_stage(current_iter)
        self.optimizer_g.zero_grad(set_to_none=True)
        losses = self.training_losses()
        loss = sum(losses.values())
        if not self.loss_is_finite_everywhere(loss):
            return self.skip_nonfinite_step(current_iter)
        self.grad_scaler.scale(loss).backward()
        self.grad_scaler.unscale_(self.optimizer_g)
        # clips when grad_clip is set; the norm it returns is also the check for a NaN gradient behind a finite loss
        params = [p for group in self.optimizer_g.param_groups for p in group['params']]
        norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip or float('inf'))
        if not self.grad_scaler.is_enabled() and not self.loss_is_finite_everywhere(norm):
            return self.skip_nonfinite_step(current_iter)
        self.grad_scaler.step(self.optimizer_g)
        self.grad_scaler.update()
        self.nonfinite_steps = 0
        self.log_dict = self.reduce_loss_dict({name: value.detach() for name, value in losses.items()})
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self):
        """Forward pass of validation and testing through the bare network (EMA when there is one): a DDP forward
        would synchronise buffers with ranks that are not running it."""
        net = self.get_bare_model(self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g)
        was_training = net.training
        net.eval()
        tile = self.opt.get('val', {}).get('tile')
        with torch.no_grad(), self.autocast():
            if tile:
                self.output = tiled_forward(net, self.lq, tile, self.opt['val'].get('tile_overlap', 32))
            else:
                self.output = net(self.lq).float()
        net.train(was_training)

    def output_path(self, dataset_name: str, img_name: str, current_iter) -> str:
        """Where an output image goes, following BasicSR's layout."""
        visualization = self.opt['path']['visualization']
        if self.opt['is_train']:
            return osp.join(visualization, img_name, f'{img_name}_{current_iter}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(visualization, dataset_name, f'{img_name}_{suffix}.png')

    def image_metrics(self, metric_opts: dict) -> dict[str, float]:
        """Every configured metric on the float output, clamped to [0, 1] (the metrics refuse floats far outside it,
        and a network may overshoot by any amount), against the float target."""
        data = {'img': self.output[0].clamp(0, 1), 'img2': self.gt[0]}
        return {name: calculate_metric(data, opt) for name, opt in metric_opts.items()}

    def scored(self, metric_opts: dict, val_data: dict) -> dict[str, float]:
        """:meth:`image_metrics`, with a metric's refusal (an image smaller than SSIM's window, say) naming the
        image's file."""
        try:
            return self.image_metrics(metric_opts)
        except ValueError as error:
            source = val_data['lq_path'][0] if 'lq_path' in val_data else val_data.get('name', ['image'])[0]
            raise ValueError(f'{source}: {error}') from error

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.evaluate(dataloader, current_iter, tb_logger, save_img)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """BasicSR validates on rank 0 alone through the DDP-wrapped network, which waits for the other ranks: here
        every rank evaluates its share and rank 0 gathers the results."""
        self.evaluate(dataloader, current_iter, tb_logger, save_img)

    def evaluate(self, dataloader, current_iter, tb_logger, save_img):
        """Validate or test on every rank, in rounds of one image per rank (a single process is one rank).

        Each round ends with rank 0 holding the round's records and output images (it writes the images) and
        telling every rank whether any image failed; so a bad image stops all ranks at once, with its file named.
        Rank 0 then logs, keeps the best-metric bookkeeping and writes the CSV files, and tells every rank whether
        that worked: all ranks leave together.
        """
        dataset = dataloader.dataset
        dataset_name = dataset.opt['name']
        metric_opts = self.opt['val'].get('metrics') or {}
        rank, world_size = get_dist_info()
        share = iter(rank_share(dataloader, rank, world_size))
        show_progress = rank == 0 and self.opt['val'].get('pbar', not self.opt['is_train'])
        progress = tqdm(total=len(dataset), unit='image', desc=f'Test {dataset_name}', disable=not show_progress)
        records = []
        for position in range(math.ceil(len(dataset) / world_size)):
            index = rank + position * world_size
            outcome, error = None, None
            if index < len(dataset):
                outcome, error = self.evaluate_next(share, index, dataset_name, current_iter, metric_opts, save_img)
            outcomes = gather_on_first_rank(outcome)
            failures = self.keep_round(outcomes, records, progress) if rank == 0 else None
            stop_on_failures(from_first_rank(failures), dataset_name, error)
        progress.close()
        failures = None
        if rank == 0 and records:
            try:
                records = [record for _, record in sorted(records, key=lambda item: item[0])]
                self.report_metrics(dataset_name, records, list(metric_opts), current_iter, tb_logger)
            except Exception as error:  # sent to every rank, then raised there
                failures = [(0, describe(error))]
        stop_on_failures(from_first_rank(failures), dataset_name, None)

    def evaluate_next(self, share, index, dataset_name, current_iter, metric_opts, save_img) -> tuple:
        """``(outcome, exception)`` for the next image of this rank's share; a failure is caught and described in
        the outcome, to be raised on every rank together."""
        outcome = {'index': index, 'record': None, 'image': None, 'error': None}
        try:
            val_data = next(share)
            img_name = (
                val_data['name'][0] if 'name' in val_data else osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            )
            self.feed_data(val_data)
            self.test()
            if save_img:
                path = self.output_path(dataset_name, img_name, current_iter)
                outcome['image'] = (path, png16_bytes(self.output[0], path))
            if metric_opts and hasattr(self, 'gt'):
                category = val_data['category'][0] if 'category' in val_data else ''
                outcome['record'] = {'image': img_name, 'category': category, **self.scored(metric_opts, val_data)}
            return outcome, None
        except Exception as error:  # sent to rank 0, then raised on every rank
            outcome['error'] = describe(error)
            return outcome, error
        finally:
            for name in self.per_image_tensors:
                self.__dict__.pop(name, None)

    @staticmethod
    def keep_round(outcomes: list, records: list, progress) -> list:
        """On rank 0: write the round's images, keep its records; return ``(rank, error)`` for each failure."""
        failures = []
        for rank, outcome in enumerate(outcomes):
            if outcome is None:  # this rank's share has run out
                continue
            if outcome['error']:
                failures.append((rank, outcome['error']))
                continue
            if outcome['image']:
                try:
                    write_bytes_atomically(*outcome['image'])
                except OSError as error:
                    failures.append((0, describe(error)))
            if outcome['record']:
                records.append((outcome['index'], outcome['record']))
            progress.update()
        return failures

    def report_metrics(self, dataset_name, records, metric_names, current_iter, tb_logger):
        """Log per-category means, keep BasicSR's best-metric bookkeeping, write the per-image and summary CSVs."""
        summary = summarise(records, metric_names)
        self.metric_results = dict(summary['combined'])
        self._initialize_best_metric_results(dataset_name)
        for name, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, name, value, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        lines = [
            f'{group}: ' + ', '.join(f'{m} {v:.4f}' for m, v in values.items()) for group, values in summary.items()
        ]
        get_root_logger().info(f'Per category on {dataset_name} ({len(records)} images):\n\t' + '\n\t'.join(lines))
        self.write_metric_files(dataset_name, records, metric_names, summary, current_iter)

    @master_only
    def write_metric_files(self, dataset_name, records, metric_names, summary, current_iter):
        """One row per image, and the per-category means, at :func:`metric_files_stem` (``.csv`` and
        ``_summary.csv``); :func:`read_metric_files` reads them back."""
        stem = metric_files_stem(self.opt, dataset_name, current_iter)
        per_image = [[r['image'], r['category'], *[r[m] for m in metric_names]] for r in records]
        write_bytes_atomically(f'{stem}.csv', csv_bytes(['image', 'category', *metric_names], per_image))
        protocols = {m: self.opt['val']['metrics'][m].get('protocol', '16bit') for m in metric_names}
        rows = []
        for group, values in summary.items():
            count = sum(1 for r in records if group == 'combined' or r['category'] == group)
            rows.append([group, count, *[f'{values[m]:.6f}' for m in metric_names]])
        header = ['group', 'images', *[summary_column(m, protocols[m]) for m in metric_names]]
        write_bytes_atomically(f'{stem}_summary.csv', csv_bytes(header, rows))

    def extra_training_state(self) -> dict:
        """Saved with the optimizers and schedulers (compat's atomic save_training_state): the grad scaler."""
        return {'grad_scaler': self.grad_scaler.state_dict()} if hasattr(self, 'grad_scaler') else {}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if resume_state.get('grad_scaler'):
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])
