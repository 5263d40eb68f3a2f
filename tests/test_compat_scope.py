"""Installing the plugin leaves other BasicSR models alone: BaseModel keeps BasicSR's methods, option files and
training sets that use nothing of the plugin are not checked, while the plugin's own models keep every fix."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import TensorDataset

import dmtnet_arch  # noqa: F401  (registers the plugin, as the start-up hook does in every process)
from dmtnet_arch import compat
from dmtnet_arch.models.dual_pixel_model import DualPixelModel
from dmtnet_arch.utils.checkpoint import RECORD_KEY
from dmtnet_arch.utils.options import OptionError, check_options

MODEL_METHODS = (
    '__init__',
    'save_network',
    'save_training_state',
    'load_network',
    'resume_training',
    'model_to_device',
)


@pytest.mark.slow  # a fresh interpreter, as the start-up hook sees it
def test_basicsr_base_model_keeps_its_own_methods_in_a_process_the_start_up_hook_loaded_the_plugin_into():
    probe = textwrap.dedent(f"""
        import json, sys
        import basicsr  # the start-up hook loads the plugin here
        from basicsr.models.base_model import BaseModel
        from basicsr.models.sr_model import SRModel
        print(json.dumps({{
            'plugin_loaded': 'dmtnet_arch' in sys.modules,
            'modules': {{name: getattr(BaseModel, name).__module__ for name in {MODEL_METHODS!r}}},
            'sr_model_shares': all(getattr(SRModel, name) is getattr(BaseModel, name)
                                   for name in {MODEL_METHODS!r} if name not in vars(SRModel)),
        }}))
    """)
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen['plugin_loaded']
    assert seen['modules'] == dict.fromkeys(MODEL_METHODS, 'basicsr.models.base_model')
    assert seen['sr_model_shares']


def test_the_plugin_models_carry_the_fixes():
    assert DualPixelModel.__mro__[1] is compat.PluginModelFixes
    assert DualPixelModel.save_network is compat.save_network_atomically
    assert DualPixelModel.save_training_state is compat.save_training_state_atomically
    assert DualPixelModel.load_network is compat.load_network_checked


def sr_model_options(tmp_path) -> dict:
    return {
        'name': 'plain',
        'model_type': 'SRModel',
        'is_train': False,
        'dist': False,
        'num_gpu': 0,
        'scale': 2,
        'network_g': {
            'type': 'MSRResNet',
            'num_in_ch': 3,
            'num_out_ch': 3,
            'num_feat': 8,
            'num_block': 1,
            'upscale': 2,
        },  # fmt: skip
        'path': {'pretrain_network_g': None, 'models': str(tmp_path)},
    }


def test_a_plain_sr_model_saves_as_basicsr_does(tmp_path):
    from basicsr.models.sr_model import SRModel

    model = SRModel(sr_model_options(tmp_path))
    model.save_network(model.net_g, 'net_g', 5)
    saved = torch.load(tmp_path / 'net_g_5.pth', weights_only=True)
    assert list(saved) == ['params']  # no plugin build record
    assert RECORD_KEY not in saved


def test_option_files_of_other_models_are_not_checked(tmp_path):
    opt = sr_model_options(tmp_path)
    opt['num_gpu'] = 64  # the plugin's check would refuse this on a machine with fewer GPUs
    opt['datasets'] = {'train': {'name': 'pairs', 'type': 'PairedImageDataset', 'use_hflp': True}}  # a typo
    assert check_options(opt) is opt
    opt['datasets']['train']['type'] = 'DualPixelDataset'  # one plugin part: the whole file is checked
    with pytest.raises(OptionError):
        check_options(opt)


def test_a_too_small_training_set_is_refused_only_for_the_plugin_datasets():
    from basicsr.data import build_dataloader

    dataset_opt = {'name': 'tiny', 'phase': 'train', 'batch_size_per_gpu': 4, 'num_worker_per_gpu': 0}
    tiny = TensorDataset(torch.zeros(2, 1))
    assert len(build_dataloader(tiny, dataset_opt, num_gpu=0)) == 0  # BasicSR's behaviour, unchanged
