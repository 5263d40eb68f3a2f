"""bf16 and torch.compile on a CPU, for inference (``scripts/inference.py --amp bf16 --compile``) and training
(``train: amp: bf16``, ``train: compile``): outputs agree with float32 eager within stated tolerances, training
steps lower the loss, and the one autocast / peak-memory / machine helpers of ``dmtnet_arch/utils/device_util.py``.

Tolerances: float32 paths (compile, channels-last) agree to 1e-4; bf16 keeps 8 bits of mantissa (a relative
error of 2^-9 per rounding), so a bf16 output is compared by its mean absolute difference (< 0.01 on [0, 1]
outputs) and its largest one (< 0.1).

Compile tests marked ``inductor`` compile real C++ kernels (gcc), on a network of two convolutions so that each
compiles in well under a minute on this 2-core machine; compiling a tiny DMTNet with inductor takes about two
minutes (116 s measured for DMTNet-T at 64 x 64, busy machine), so DMTNet itself goes through dynamo with the
``aot_eager`` backend for inference (the same graph capture, no code generation; 33 s) and the ``eager`` backend
for training (graph capture only: ``aot_eager``'s joint forward-backward tracing of the tiny DMTNet took 108 to
138 s per test on this busy machine, too slow for the suite).
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

import dmtnet_arch  # noqa: F401
from dmtnet_arch.tools.inference import Deblurrer
from dmtnet_arch.utils import device_util
from dmtnet_arch.utils.img_util import read_image, write_image
from dmtnet_arch.utils.options import OptionError, check_options
from tests.helpers import REPO, load_script

SCRIPT = REPO / 'scripts' / 'inference.py'
TINY_DMTNET = {'type': 'DMTNet', 'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'num_rbm': 1,
               'num_rm': 1}  # fmt: skip
needs_compiler = pytest.mark.skipif(shutil.which('g++') is None, reason='inductor needs a C++ compiler on a CPU')


@ARCH_REGISTRY.register(suffix='test_precision')
class TwoConvolutions(nn.Module):
    """The smallest dual-pixel network worth compiling: 6 channels in, 3 out, two 3x3 convolutions."""

    def __init__(self, in_channels: int = 6, width: int = 8):
        super().__init__()
        self.in_channels = in_channels
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, 3, 3, padding=1)
        )

    def forward(self, x):
        return self.body(x) + x[:, :3]


def close_in_bf16(output: torch.Tensor, reference: torch.Tensor):
    difference = (output.float() - reference).abs()
    assert difference.mean() < 0.01 and difference.max() < 0.1, (difference.mean(), difference.max())


# ---------------------------------------------------------------------------------------------------------------
# device_util


def test_autocast_is_bf16_on_a_cpu_and_nothing_without_amp():
    x = torch.rand(4, 4)
    with device_util.autocast('cpu', 'bf16'):
        assert (x @ x).dtype == torch.bfloat16
    with device_util.autocast(torch.device('cpu'), None):
        assert (x @ x).dtype == torch.float32
    with pytest.raises(ValueError, match='--amp fp16 needs a GPU'):
        device_util.check_amp('cpu', 'fp16')
    with pytest.raises(ValueError, match="got 'fp8'"):
        device_util.amp_dtype('fp8')


PEAK_PROBE = """
import dmtnet_arch_startup
dmtnet_arch_startup.import_package_without_registration()
import numpy as np
from dmtnet_arch.utils import device_util
with device_util.PeakMemory('cpu') as memory:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
print(memory.peak_gib() - memory.before_gib, block.sum() > 0, memory.text())
"""


def test_peak_memory_sees_an_allocation_in_its_block_and_names_the_machine():
    # a fresh process: in a long-lived one the allocator may hand out pages that are resident already
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))}
    result = subprocess.run([sys.executable, '-c', PEAK_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    grown, touched, text = result.stdout.split(' ', 2)
    assert float(grown) > 0.05 and touched == 'True'
    assert text.startswith('peak resident memory of the process')
    line = device_util.describe_machine('cpu', threads=1)
    assert 'cores' in line and 'load ' in line and '1 torch threads' in line
    assert 'torch' not in device_util.describe_machine('cpu', with_torch=False)


# ---------------------------------------------------------------------------------------------------------------
# Inference


def tiny_dmtnet() -> nn.Module:
    from basicsr.archs import build_network

    torch.manual_seed(0)
    return build_network(dict(TINY_DMTNET)).eval()


def test_dmtnet_in_bf16_on_a_cpu_stays_close_to_fp32_whole_and_tiled():
    net, x = tiny_dmtnet(), torch.rand(1, 6, 48, 64)
    reference = Deblurrer(net)(x)
    close_in_bf16(Deblurrer(net, amp='bf16')(x), reference)
    close_in_bf16(Deblurrer(net, amp='bf16', tile=32, tile_overlap=8)(x), Deblurrer(net, tile=32, tile_overlap=8)(x))


def test_dmtnet_graph_captures_whole_for_compile_in_fp32_and_bf16():
    """dynamo captures DMTNet without a graph break (one graph), with autocast inside the compiled region."""
    net, x = tiny_dmtnet(), torch.rand(1, 6, 40, 56)
    reference = Deblurrer(net)(x)
    explanation = torch._dynamo.explain(net)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch.testing.assert_close(Deblurrer(net, compile='aot_eager')(x), reference, rtol=1e-4, atol=1e-4)
    close_in_bf16(Deblurrer(net, compile='aot_eager', amp='bf16')(x), reference)


def run_script(argv) -> int:
    module = load_script('inference')
    return module.main([str(a) for a in argv] + ['--quiet', '--device', 'cpu'])


@pytest.mark.inductor
@pytest.mark.slow
@needs_compiler
def test_inference_command_with_bf16_and_inductor_compile_on_a_cpu(tmp_path):
    """--amp bf16 --compile (inductor, C++ kernels) through the command: the 16-bit output is within bf16's
    tolerance of float32 eager's (--compile in float32 is checked through aot_eager above: one inductor build
    here, not two)."""
    torch.manual_seed(0)
    torch.save({'params': TwoConvolutions().state_dict()}, tmp_path / 'net.pth')
    options = tmp_path / 'net.yml'
    options.write_text(
        f'network_g:\n  type: TwoConvolutions_test_precision\npath:\n  pretrain_network_g: {tmp_path / "net.pth"}\n'
    )
    rng = np.random.default_rng(0)
    for view in 'LR':
        write_image(tmp_path / 'in' / f'scene_{view}.png', rng.integers(0, 65536, (24, 40, 3)).astype(np.uint16))
    outputs = {}
    for name, flags in {'fp32': [], 'both': ['--compile', '--amp', 'bf16']}.items():
        assert run_script(['-opt', options, '--input', tmp_path / 'in', '--output', tmp_path / name, *flags]) == 0
        outputs[name] = read_image(tmp_path / name / 'scene.png').astype(np.float64) / 65535
    close_in_bf16(torch.from_numpy(outputs['both']), torch.from_numpy(outputs['fp32']))


# ---------------------------------------------------------------------------------------------------------------
# Training


def training_model(network: dict, amp=None, compile=False, size: int = 32):
    from basicsr.models import build_model

    torch.manual_seed(0)
    opt = {
        'model_type': 'DualPixelModel', 'is_train': True, 'dist': False, 'num_gpu': 0, 'rank': 0, 'world_size': 1,
        'network_g': dict(network), 'path': {}, 'datasets': {'train': {'gt_size': size}},
        'train': {
            'pixel_opt': {'type': 'L1Loss'}, 'optim_g': {'type': 'Adam', 'lr': 2e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'amp': amp, 'compile': compile,
        },
    }  # fmt: skip
    return build_model(opt)


def losses_of_training(model, steps: int, size: int = 32) -> list[float]:
    """Train on one fixed batch (a blurred copy of the target, as views): the loss must fall."""
    generator = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 3, size, size, generator=generator)
    blurred = nn.functional.avg_pool2d(gt, 3, 1, 1)
    model.feed_data({'lq': torch.cat([blurred, blurred], 1), 'gt': gt})
    losses = []
    for step in range(1, steps + 1):
        model.optimize_parameters(step)
        losses.append(float(model.log_dict['l_pix']))
    return losses


def falls(losses: list[float]) -> bool:
    """The last loss is at least 5% below the first."""
    return losses[-1] < 0.95 * losses[0]


@pytest.mark.parametrize(('amp', 'compile'), [('bf16', False), (None, 'eager'), ('bf16', 'eager')])
def test_dmtnet_trains_on_a_cpu_in_bf16_and_compiled(amp, compile):
    model = training_model(TINY_DMTNET, amp, compile)
    assert (model.net_g_train is model.net_g) == (not compile)
    losses = losses_of_training(model, 6)
    assert all(np.isfinite(losses)) and falls(losses), losses
    keys = model.get_bare_model(model.net_g).state_dict().keys()
    assert not any(key.startswith('_orig_mod') for key in keys)  # checkpoints hold the plain network


@pytest.mark.inductor
@pytest.mark.slow
@needs_compiler
@pytest.mark.parametrize('amp', ['bf16'])  # compile alone is the 'eager' backend case above; inductor is slow
def test_training_compiled_by_inductor_lowers_the_loss_like_eager(amp):
    """train: compile: true (inductor: C++ forward and backward kernels) on two convolutions, with and without bf16:
    the loss falls, and in float32 it follows eager training's to 1e-4."""
    network = {'type': 'TwoConvolutions_test_precision'}
    compiled = losses_of_training(training_model(network, amp, True), 8)
    assert falls(compiled), compiled
    if amp is None:
        np.testing.assert_allclose(compiled, losses_of_training(training_model(network), 8), rtol=1e-4, atol=1e-5)


def test_train_compile_refusals_name_the_option(monkeypatch):
    with pytest.raises(ValueError, match="train: compile: unknown torch.compile backend 'no_such_backend'"):
        training_model(TINY_DMTNET, compile='no_such_backend')
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    monkeypatch.delenv('CXX', raising=False)
    with pytest.raises(ValueError, match='train: compile: inductor compiles C.. on a CPU and no C.. compiler'):
        training_model(TINY_DMTNET, compile=True)


def test_a_compile_failure_at_the_first_step_names_the_option(monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    model = training_model(TINY_DMTNET, compile='aot_eager')

    def broken(*args, **kwargs):
        raise BackendCompilerFailed('inductor', RuntimeError('C++ compile error: cannot find cc1plus'), None)

    monkeypatch.setattr(model, 'net_g_train', broken)
    with pytest.raises(
        RuntimeError, match=r'train: compile: torch.compile could not compile DMTNet .*train: compile: false'
    ):
        losses_of_training(model, 1)


def test_option_checker_knows_train_compile():
    import yaml
    from basicsr.utils.options import ordered_yaml

    path = REPO / 'options' / 'train_DMTNet_synthetic.yml'
    opt = yaml.load(path.read_text(), Loader=ordered_yaml()[0])
    opt.update(is_train=True, num_gpu=0, dist=False, rank=0, world_size=1)
    opt['train'].update(compile=True, amp='bf16')
    check_options(opt)
    opt['train']['compile'] = 3
    with pytest.raises(OptionError, match='compile'):
        check_options(opt)
