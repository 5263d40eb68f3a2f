"""IFAN: size and released key layout, loading the released state dict, the IAC against a direct computation (released
quirk and corrected), the disparity warp, 8-bit reading, and IFANModel through the train and test entries."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.ifan_arch import IFAN, IFANReblurNet, iterative_adaptive_convolution, warp_horizontally
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.utils.checkpoint import RECORD_KEY, load_network_weights, network_record
from tests.helpers import (
    PYTHON,
    REPO,
    TEST_ENTRY,
    TRAIN_ENTRY,
    check_ok,
    dataset_opt,
    eval_options,
    load_params,
    make_data,
    run,
    train_options,
    write_png16,
    write_yaml,
)

TINY = {'channels': 4, 'res_num': 1, 'iterations': 2}  # all modules present, a few thousand parameters

# Facts from the released code (codeslake/IFAN, models/archs/IFAN.py and RBN.py with configs/config_IFAN.py): a few
# keys of the released IFAN.pytorch with their shapes, and the number of tensors of each network.
RELEASED_SHAPES = {
    'module.Network.conv1_1.0.weight': (32, 3, 3, 3),
    'module.Network.conv4_4.0.0.weight': (128, 256, 3, 3),
    'module.Network.conv4_4.1.stem.1.2.weight': (128, 128, 3, 3),
    'module.Network.conv_res.1.stem.2.0.weight': (128, 128, 3, 3),
    'module.Network.upconv3_u.0.weight': (128, 128, 4, 4),
    'module.Network.upconv1_2.stem.0.2.bias': (32,),
    'module.Network.out_res.0.weight': (3, 32, 3, 3),
    'module.Network.DME.3.weight': (1, 128, 3, 3),
    'module.Network.conv_DME.0.weight': (128, 1, 3, 3),
    'module.Network.F.3.weight': (15232, 128, 1, 1),
    'module.reblurNet.RBF.0.0.weight': (128, 15232, 3, 3),
    'module.reblurNet.RBF.3.weight': (17 * 3 * 3 * 2 + 17 * 3, 128, 3, 3),
}
RELEASED_TENSORS = {'Network': 158, 'reblurNet': 20}


def released_state(ifan: IFAN, reblur: IFANReblurNet) -> dict:
    """A state dict laid out as the released IFAN.pytorch: the DataParallel-wrapped trainer's DeblurNet."""
    state = {f'module.Network.{k}': v for k, v in ifan.state_dict().items()}
    return state | {f'module.reblurNet.{k}': v for k, v in reblur.state_dict().items()}


def test_released_sizes_and_key_layout():
    ifan = IFAN()
    reblur = IFANReblurNet.for_network(ifan)
    assert sum(p.numel() for p in ifan.parameters()) == 10_476_996
    assert sum(p.numel() for p in reblur.parameters()) == 19_139_685
    assert ifan.filter_channels == 17 * (128 * 3 * 2) + 17 * 128 == 15_232
    state = released_state(ifan, reblur)
    for key, shape in RELEASED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len(ifan.state_dict()) == RELEASED_TENSORS['Network']
    assert len(reblur.state_dict()) == RELEASED_TENSORS['reblurNet']


def random_tiny_pair(seed: int) -> tuple[IFAN, IFANReblurNet]:
    torch.manual_seed(seed)
    ifan = IFAN(**TINY)
    return ifan, IFANReblurNet.for_network(ifan)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def build_test_model(path_options: dict):
    """IFANModel with the tiny network in test mode (no training settings), built in this process."""
    opt = {'model_type': 'IFANModel', 'is_train': False, 'dist': False, 'num_gpu': 0, 'rank': 0, 'world_size': 1}
    return build_model(opt | {'network_g': {'type': 'IFAN', **TINY}, 'path': path_options})


def test_released_state_dict_loads_strictly_through_every_loader(tmp_path):
    source, source_reblur = random_tiny_pair(1)
    path = tmp_path / 'IFAN.pytorch'
    torch.save(released_state(source, source_reblur), path)

    # checkpoint.py (scripts, leaderboard): strict, the reblurring network dropped
    ifan, reblur = random_tiny_pair(2)
    assert load_network_weights(ifan, str(path)) == 'state dict'
    assert_same_weights(ifan, source)
    # the reblurring network takes its own half of the same file
    load_network_weights(reblur, str(path))
    assert_same_weights(reblur, source_reblur)
    # a plain load_state_dict of the file's contents, and of what BasicSR's load_network passes (module. stripped)
    ifan = IFAN(**TINY)
    ifan.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert_same_weights(ifan, source)
    stripped = {k.removeprefix('module.'): v for k, v in torch.load(path, weights_only=True).items()}
    ifan = IFAN(**TINY)
    ifan.load_state_dict(stripped, strict=True)
    assert_same_weights(ifan, source)
    # a key the network lacks is still an error under strict loading
    with pytest.raises(RuntimeError, match='Unexpected key'):
        IFAN(**TINY).load_state_dict(stripped | {'Network.extra.weight': torch.zeros(1)}, strict=True)

    # BasicSR's path: pretrain_network_g in a test option file, with the default param_key_g 'params'
    model = build_test_model({'pretrain_network_g': str(path), 'param_key_g': 'params', 'strict_load_g': True})
    assert_same_weights(model.net_g, source)


def test_iac_quirk_switch_changes_the_output():
    ifan, _ = random_tiny_pair(3)
    with torch.no_grad():  # filters of order 1 (as trained ones are), not the near-zero ones of the initialisation
        ifan.F[3].bias.normal_(0.0, 0.5)
    corrected = IFAN(**TINY, reuse_first_kernel=False)
    corrected.load_state_dict(ifan.state_dict())
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        released, fixed = ifan.eval()(x), corrected.eval()(x)
    assert (released - fixed).abs().max() > 1e-3


def direct_iac(x, filters, iterations, size, reuse_first_kernel, activate_last=True):
    """The IAC pixel by pixel: the vertical pass, then the horizontal one, borders clamped (edge replication)."""
    _, channels, height, width = x.shape
    k = size
    x = x[0].double()
    filters = filters[0].double()
    half = size // 2
    for i in range(iterations):
        base = i * 2 * channels * k
        bias = filters[iterations * 2 * channels * k + i * channels :][:channels]
        vertical = torch.zeros_like(x)
        out = torch.zeros_like(x)
        second = 0 if reuse_first_kernel else channels * k
        for c in range(channels):
            for y in range(height):
                for xx in range(width):
                    vertical[c, y, xx] = sum(
                        x[c, min(max(y + t - half, 0), height - 1), xx] * filters[base + c * k + t, y, xx]
                        for t in range(k)
                    )
        for c in range(channels):
            for y in range(height):
                for xx in range(width):
                    out[c, y, xx] = sum(
                        vertical[c, y, min(max(xx + t - half, 0), width - 1)]
                        * filters[base + second + c * k + t, y, xx]
                        for t in range(k)
                    )
        x = out + bias
        if activate_last or i < iterations - 1:
            x = torch.where(x >= 0, x, 0.1 * x)
    return x[None]


@pytest.mark.parametrize('reuse_first_kernel', [True, False])
@pytest.mark.parametrize('activate_last', [True, False])
def test_iac_equals_a_direct_per_pixel_computation(reuse_first_kernel, activate_last):
    torch.manual_seed(4)
    iterations, size, channels = 2, 3, 2
    x = torch.randn(1, channels, 4, 5)
    filters = torch.randn(1, iterations * (2 * channels * size + channels), 4, 5)
    ours = iterative_adaptive_convolution(x, filters, iterations, size, reuse_first_kernel, activate_last)
    expected = direct_iac(x, filters, iterations, size, reuse_first_kernel, activate_last)
    torch.testing.assert_close(ours.double(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='filter channels'):
        iterative_adaptive_convolution(x, filters[:, 1:], iterations, size)


def test_disparity_warp_samples_at_x_plus_disparity():
    image = torch.arange(2 * 3 * 6, dtype=torch.float32).view(1, 2, 3, 6)
    shift = torch.full((1, 1, 3, 6), 2.0)
    expected = torch.cat([image[..., 2:], torch.zeros(1, 2, 3, 2)], dim=-1)  # zeros beyond the border
    torch.testing.assert_close(warp_horizontally(image, shift), expected)
    half = warp_horizontally(image, torch.full((1, 1, 3, 6), 0.5))
    torch.testing.assert_close(half[..., :5], (image[..., :5] + image[..., 1:]) / 2)


def test_ifan_any_size_and_clipping():
    ifan, _ = random_tiny_pair(5)
    x = torch.rand(2, 3, 13, 21)
    with torch.no_grad():
        train_out = ifan.train()(x)
        eval_out = ifan.eval()(x)
        padded = F.pad(x, (0, 3, 0, 3), mode='replicate')
        reference = ifan.deblur(padded)[0][..., :13, :21]
    assert eval_out.shape == (2, 3, 13, 21)
    torch.testing.assert_close(train_out, reference)
    torch.testing.assert_close(eval_out, reference.clamp(0, 1))
    with pytest.raises(ValueError, match='multiples of 8'):
        ifan.train()(x, right=x)
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        ifan(torch.rand(1, 6, 8, 8))


def write_combined_view(data, count: int):
    """inputC/ = the mean of inputL/ and inputR/, as the combined view of a dual-pixel sensor."""
    import cv2

    for index in range(count):
        name = f'{index:03d}.png'
        left, right = (cv2.imread(str(data / view / name), cv2.IMREAD_UNCHANGED) for view in ('inputL', 'inputR'))
        combined = ((left.astype(np.uint32) + right) // 2).astype(np.uint16)
        write_png16(data / 'inputC' / name, cv2.cvtColor(combined, cv2.COLOR_BGR2RGB))


def test_dataset_bit_depth_8_reads_as_opencv_default(tmp_path):
    data = make_data(tmp_path / 'data', 1)
    write_combined_view(data, 1)
    opt = dataset_opt('eight', data, dataroot_lqC=str(data / 'inputC'))
    full, eight = DualPixelDataset(opt)[0], DualPixelDataset({**opt, 'bit_depth': 8})[0]
    for key in ('lq', 'lqC', 'gt'):
        levels = torch.round(full[key] * 65535).to(torch.int64)
        torch.testing.assert_close(eight[key], (levels >> 8).float() / 255)
    with pytest.raises(ValueError, match='bit_depth must be 8'):
        DualPixelDataset({**opt, 'bit_depth': 16})


def ifan_options(options: dict) -> dict:
    options['model_type'] = 'IFANModel'
    options['network_g'] = {'type': 'IFAN', **TINY}
    for dataset in options['datasets'].values():
        dataset['dataroot_lqC'] = dataset['dataroot_lqL'].replace('inputL', 'inputC')
        dataset['bit_depth'] = 8
    for metric in options['val']['metrics'].values():
        metric['protocol'] = '8bit'
    return options


@pytest.mark.slow
def test_ifan_model_trains_and_tests_through_the_entries(tmp_path, new_name):
    data = make_data(tmp_path / 'data', 2)
    write_combined_view(data, 2)
    name = new_name('ifan')
    train = train_options(name, data, total_iter=2, save_freq=2, ema_decay=0.999)
    train['train']['pixel_opt'] = {'type': 'MSELoss', 'loss_weight': 1.0}
    train['datasets']['val'] = eval_options('v', data, None)['datasets']['test_1'] | {'name': 'tiny_val'}
    train['val'] = eval_options('v', data, None, save_img=True)['val'] | {'val_freq': 2}
    train = ifan_options(train)
    check_ok(result := run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'train.yml', train)], REPO))
    log = result.stderr + result.stdout
    for term in ('l_deblur', 'l_dme', 'l_reblur'):
        assert term in log, term
    experiment = REPO / 'experiments' / name
    state = torch.load(experiment / 'training_states' / '2.state', weights_only=False)
    reblur = IFANReblurNet.for_network(IFAN(**TINY))
    reblur.load_state_dict(state['net_reblur'])  # the reblurring network is saved for resuming
    assert len(state['optimizers'][0]['param_groups'][0]['params']) == len(IFAN(**TINY).state_dict()) + len(
        reblur.state_dict()
    )
    checkpoint = experiment / 'models' / 'net_g_2.pth'
    IFAN(**TINY).load_state_dict(load_params(checkpoint), strict=True)
    assert list((experiment / 'visualization').rglob('*.png'))  # validation saved its outputs

    test_name = new_name('ifan_test')
    test = ifan_options(eval_options(test_name, data, checkpoint, save_img=True))
    check_ok(run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'test.yml', test)], REPO))
    results = REPO / 'results' / test_name
    with open(results / 'metrics_tiny_test_summary.csv') as f:
        header, combined = list(csv.reader(f))[:2]
    assert header == ['group', 'images', 'psnr (8bit)', 'ssim (8bit)', 'mae (8bit)']
    assert combined[:2] == ['combined', '2'] and 0 < float(combined[2]) < 100
    assert len(list(results.rglob('*.png'))) == 2


def test_ifan_model_needs_the_combined_view():
    model = build_test_model({})
    with pytest.raises(KeyError, match='lqC'):
        model.feed_data({'lq': torch.rand(1, 6, 8, 8), 'gt': torch.rand(1, 3, 8, 8)})


def test_ifan_model_checks_the_checkpoint_record(tmp_path):
    """IFANModel loads through the plugin's checked loader: a structural option that differs is named."""
    fixed = IFAN(**TINY, reuse_first_kernel=False)
    path = tmp_path / 'fixed.pth'
    torch.save({'params': fixed.state_dict(), RECORD_KEY: network_record(fixed)}, path)
    opt = {'model_type': 'IFANModel', 'is_train': False, 'dist': False, 'num_gpu': 0, 'rank': 0, 'world_size': 1}
    network = {'type': 'IFAN', **TINY, 'reuse_first_kernel': True}
    with pytest.raises(ValueError, match='reuse_first_kernel is True in the options but the checkpoint was built'):
        build_model(opt | {'network_g': network, 'path': {'pretrain_network_g': str(path), 'param_key_g': 'params'}})
    adopted = build_test_model({'pretrain_network_g': str(path), 'param_key_g': 'params'})
    assert adopted.net_g.reuse_first_kernel is False
    assert_same_weights(adopted.net_g, fixed)
    wider = tmp_path / 'wider.pytorch'  # a bare state dict of another width: no record, shapes named
    torch.save(IFAN(**{**TINY, 'channels': 8}).state_dict(), wider)
    with pytest.raises(ValueError, match=f'{wider}: the checkpoint does not fit the network'):
        build_test_model({'pretrain_network_g': str(wider), 'param_key_g': 'params'})


def train_mode_model(path_options: dict, seed: int, pixel_opt: dict | None = None):
    """IFANModel with the tiny network, training settings on (one optimizer over IFAN and its reblurring network)."""
    torch.manual_seed(seed)
    opt = {'model_type': 'IFANModel', 'is_train': True, 'dist': False, 'num_gpu': 0, 'rank': 0, 'world_size': 1}
    return build_model(
        opt
        | {
            'network_g': {'type': 'IFAN', **TINY},
            'path': path_options,
            'datasets': {'train': {'gt_size': 32}},
            'train': {
                'pixel_opt': {'type': 'MSELoss'} if pixel_opt is None else pixel_opt,
                'optim_g': {'type': 'Adam', 'lr': 1e-3},
                'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
            },
        }
    )


def test_reblurring_network_starts_from_the_released_file_and_resumes(tmp_path):
    source, source_reblur = random_tiny_pair(6)
    path = tmp_path / 'IFAN.pytorch'
    torch.save(released_state(source, source_reblur), path)
    model = train_mode_model({'pretrain_network_g': str(path), 'pretrain_network_reblur': str(path)}, seed=7)
    assert_same_weights(model.net_g, source)
    assert_same_weights(model.net_reblur, source_reblur)

    views = torch.rand(2, 9, 32, 32)
    model.feed_data({'lq': views[:, :6], 'lqC': views[:, 6:], 'gt': torch.rand(2, 3, 32, 32)})
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_deblur', 'l_dme', 'l_reblur'}
    pairs = zip(model.net_reblur.parameters(), source_reblur.parameters(), strict=True)
    moved = max((a - b).abs().max() for a, b in pairs)
    assert moved > 0  # the reblurring network is trained by the same optimizer

    state = {'optimizers': [model.optimizer_g.state_dict()], 'schedulers': [model.schedulers[0].state_dict()]}
    resumed = train_mode_model({}, seed=8)
    resumed.resume_training(state | model.extra_training_state())
    assert_same_weights(resumed.net_reblur, model.net_reblur)
    with pytest.raises(ValueError, match='gt_size 36 is not a multiple of 8'):
        build_model(model.opt | {'datasets': {'train': {'gt_size': 36}}})


def test_every_loss_term_defaults_to_the_released_mse():
    model = train_mode_model({}, seed=9, pixel_opt={})
    for loss in (model.cri_pix, model.cri_dme, model.cri_reblur):
        assert type(loss).__name__ == 'MSELoss' and loss.loss_weight == 1.0


def test_validation_releases_every_per_image_tensor_ifan_keeps():
    model = train_mode_model({}, seed=10)
    views = torch.rand(1, 9, 32, 32)
    data = {'lq': views[:, :6], 'lqC': views[:, 6:], 'gt': torch.rand(1, 3, 32, 32), 'name': ['scene']}
    outcome, error = model.evaluate_next(iter([data]), 0, 'tiny', 1, {}, save_img=False)
    assert error is None and outcome['error'] is None
    assert not {'lq', 'gt', 'output', 'left', 'right'} & set(vars(model))
