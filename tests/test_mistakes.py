"""Mistakes that used to run to the end with exit 0 and a wrong result (issue 11) are refused, naming their cause.

One test per mechanism with several cases each, and the numbered cases of the issue end to end (case 5, resuming,
is tested with the resume code). Tiny data and networks; the entries run as subprocesses only where the case is
about what a user's command does.
"""

import copy
import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from basicsr import test as basicsr_test
from basicsr.models import build_model
from basicsr.utils.options import ordered_yaml
from test_training import (  # noqa: F401  (new_name: a fixture, used through experiment_name)
    NETWORK,
    PYTHON,
    REPO,
    SIZE,
    TEST_ENTRY,
    TRAIN_ENTRY,
    eval_options,
    last_line,
    make_data,
    new_name,
    run,
    train_options,
    write_png16,
    write_yaml,
)

import dmtnet_arch  # noqa: F401
from dmtnet_arch import compat
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.data.dpdd_crops import GRID_RECORD
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.data.synthetic_dp import generate_dataset
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_mae, calculate_dp_psnr
from dmtnet_arch.utils.checkpoint import (
    RECORD_KEY,
    adopt_checkpoint_options,
    build_network_from_checkpoint,
    load_network_weights,
)
from dmtnet_arch.utils.device_util import check_device
from dmtnet_arch.utils.options import OptionError, check_options

OPTIONS = sorted((REPO / 'options').glob('*.yml'))
SCRIPTS = REPO / 'scripts'
TINY = {key: value for key, value in NETWORK.items() if key != 'type'}


@pytest.fixture
def experiment_name(request):
    """Unique experiment names whose outputs are removed afterwards (test_training's new_name)."""
    return request.getfixturevalue('new_name')


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped(name: str, is_train: bool = True) -> dict:
    """A shipped option file as parse_options leaves it on this CPU machine."""
    opt = yaml.load((REPO / 'options' / name).read_text(), Loader=ordered_yaml()[0])
    opt.update(is_train=is_train, num_gpu=0, dist=False, rank=0, world_size=1)
    return opt


def refused(opt: dict, *fragments: str):
    """check_options refuses ``opt`` with a message holding every fragment."""
    with pytest.raises(OptionError) as error:
        check_options(opt)
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)


def changed(opt: dict, edit) -> dict:
    opt = copy.deepcopy(opt)
    edit(opt)
    return opt


# ---------------------------------------------------------------------------------------------------------------
# (a) option validation at load time


@pytest.mark.parametrize('path', OPTIONS, ids=[path.name for path in OPTIONS])
def test_every_shipped_option_file_passes(path, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(path)])
    from basicsr.utils import options

    assert getattr(options.parse_options, 'checks_options', False)
    opt, _ = options.parse_options(str(tmp_path), is_train=path.name.startswith('train_'))
    assert opt['network_g']['type'] == yaml.safe_load(path.read_text())['network_g']['type']


def test_unknown_keys_are_errors_with_the_closest_known_key():
    train = shipped('train_DMTNet_synthetic.yml')
    cases = [
        (
            lambda o: o['datasets']['train'].update(use_hflp=True),
            "datasets: train: unknown option 'use_hflp'",
            'use_hflip?',
        ),
        (
            lambda o: o['network_g'].update(input_residal=True),
            "network_g: unknown option 'input_residal'",
            'input_residual?',
        ),
        (lambda o: o['train'].update(grad_clp=1.0), "train: unknown option 'grad_clp'", 'grad_clip?'),
        (  # SRModel would build it, but the dual-pixel models' losses never use it: refused, not silently ignored
            lambda o: o['train'].update(perceptual_opt={'type': 'PerceptualLoss'}),
            "train: unknown option 'perceptual_opt'",
        ),
        (
            lambda o: o['train']['scheduler'].update(eta_mins=[0.0]),
            "train: scheduler: unknown option 'eta_mins'",
            'eta_min?',
        ),
        (
            lambda o: o['path'].update(pretrain_netwrok_g='x.pth'),
            "path: unknown option 'pretrain_netwrok_g'",
            'pretrain_network_g?',
        ),
        (
            lambda o: o['val']['metrics']['psnr'].update(crop_border=4),
            "val: metrics: psnr: unknown option 'crop_border'",
        ),
        (lambda o: o['network_g'].update(type='DMTNett'), "network_g: type: no network named 'DMTNett'", 'DMTNet?'),
    ]
    for edit, *fragments in cases:
        refused(changed(train, edit), *fragments)


def test_numbers_written_as_strings_are_converted_and_bad_values_named():
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['train']['optim_g']['lr'] = '5e-4'  # YAML 1.1 reads 5e-4 without a dot as a string
    opt['datasets']['train']['gt_size'] = '64'
    opt['train']['pixel_opt']['eps'] = '1e-6'
    opt['val']['val_freq'] = 2e4  # !!float 2e4
    check_options(opt)
    assert opt['train']['optim_g']['lr'] == 5e-4 and opt['datasets']['train']['gt_size'] == 64
    assert opt['train']['pixel_opt']['eps'] == 1e-6 and opt['val']['val_freq'] == 20000
    train = shipped('train_DMTNet_synthetic.yml')
    cases = [
        (lambda o: o['datasets']['train'].update(gt_size='big'), "datasets: train: gt_size must be int, got 'big'"),
        (lambda o: o['datasets']['train'].update(gt_size=64.5), 'datasets: train: gt_size must be int, got 64.5'),
        (lambda o: o['datasets']['train'].update(batch_size_per_gpu=0), 'batch_size_per_gpu must be at least 1, got 0'),
        (lambda o: o['datasets']['train'].update(use_hflip='yes please'), 'datasets: train: use_hflip must be bool'),
        (lambda o: o['network_g'].update(embed_dim='wide'), "network_g: embed_dim must be int, got 'wide'"),
        (
            lambda o: o['val']['metrics']['psnr'].update(protocol='12bit'),
            'val: metrics: psnr: protocol must be one of 16bit',
        ),
        (lambda o: o['train'].update(amp='fp32'), 'train: amp must be one of bf16, fp16, False'),
        (lambda o: o['datasets']['train'].update(mini_batch_sizes=[4, 0]), 'mini_batch_sizes[1] must be at least 1'),
    ]
    for edit, fragment in cases:
        refused(changed(train, edit), fragment)


def test_progressive_and_cyclic_schedule_options_are_known():
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['datasets']['train'].update(mini_batch_sizes=[4, 2], iters=['300', 300], gt_sizes=[32, 64])
    opt['train']['total_iter'] = 600
    opt['train']['scheduler'] = {
        'type': 'CosineAnnealingRestartCyclicLR',
        'periods': [300, 300],
        'restart_weights': [1, 1],
        'eta_mins': [3e-4, 1e-6],
    }
    check_options(opt)
    assert opt['datasets']['train']['iters'] == [300, 300]


def test_dataset_names_must_be_unique():
    refused(
        changed(shipped('train_DMTNet_synthetic.yml'), lambda o: o['datasets']['val'].update(name='synthetic_train')),
        "datasets: val: name 'synthetic_train' is also the name of datasets: train",
    )
    test = shipped('test_DMTNet_synthetic.yml', is_train=False)
    test['datasets']['test_2'] = copy.deepcopy(test['datasets']['test'])
    refused(test, "datasets: test_2: name 'synthetic_test' is also the name of datasets: test")


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on a machine without a GPU')
def test_device_requests_without_the_device_give_one_clear_message():
    refused(
        changed(shipped('train_DMTNet_synthetic.yml'), lambda o: o.update(num_gpu=1)), 'num_gpu: 1 but PyTorch sees 0'
    )
    for name in ('cuda', 'cuda:1'):
        with pytest.raises(OptionError, match=rf'--device {name}: PyTorch sees 0 GPU\(s\).*--device cpu'):
            check_device(name)
    assert check_device('cpu').type == 'cpu'
    for script in ('visualize_scales', 'benchmark'):  # the scripts with a --device check it before any work
        argv = {
            'visualize_scales': ['-opt', 'unread.yml', '--input', 'unread', '--output', 'unwritten'],
            'benchmark': [],
        }
        with pytest.raises(OptionError, match=r'--device cuda:1: PyTorch sees 0 GPU\(s\)'):
            load_script(script).main([*argv[script], '--device', 'cuda:1'])


# ---------------------------------------------------------------------------------------------------------------
# (b) checkpoints carry what built them; (c) no test without weights


def model_options(models_dir: Path, checkpoint=None, **network) -> dict:
    """A DualPixelModel in test mode on the CPU, as BasicSR's test pipeline builds it."""
    return {
        'model_type': 'DualPixelModel',
        'is_train': False,
        'dist': False,
        'rank': 0,
        'num_gpu': 0,
        'network_g': {'type': 'DMTNet', **TINY, **network},
        'path': {
            'pretrain_network_g': checkpoint,
            'strict_load_g': True,
            'param_key_g': 'params',
            'models': str(models_dir),
        },
        'val': {'save_img': False},
    }


@pytest.fixture
def basicsr_log(caplog, monkeypatch):
    """BasicSR's logger (INFO) does not propagate to pytest's handler: let it, for one test."""
    from basicsr.utils import get_root_logger

    monkeypatch.setattr(get_root_logger(), 'propagate', True)
    caplog.set_level(logging.INFO, logger='basicsr')
    return caplog


def saved_checkpoint(tmp_path: Path, **network) -> Path:
    """A checkpoint written by the model's own save_network (compat's atomic save, with the record)."""
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path / 'models', **network))
    model.save_network(model.net_g, 'net_g', 7)
    return tmp_path / 'models' / 'net_g_7.pth'


def test_checkpoints_record_what_built_them_and_loads_check_it(tmp_path, basicsr_log):
    checkpoint = saved_checkpoint(tmp_path, input_residual=True)
    record = torch.load(checkpoint, weights_only=True)[RECORD_KEY]
    assert record['type'] == 'DMTNet' and record['dmtnet_arch_version'] == dmtnet_arch.__version__
    assert record['options']['input_residual'] is True and record['options']['variant'] == 'T'
    assert record['options']['embed_dim'] == TINY['embed_dim'] and record['options']['window_size'] == 8

    # set to another value in the options: an error naming the option and both values
    with pytest.raises(ValueError, match=r'network_g: input_residual is False in the options .* input_residual: True'):
        build_model(model_options(tmp_path, str(checkpoint), input_residual=False))
    with pytest.raises(ValueError, match=r"variant is 'S' in the options .*variant: 'T' \(checkpoint is DMTNet-T\)"):
        build_model(model_options(tmp_path, str(checkpoint), variant='S', input_residual=True))
    # left unset: the checkpoint's value is used, and logged
    opt = model_options(tmp_path, str(checkpoint))
    model = build_model(opt)
    assert model.net_g.input_residual is True
    assert (
        f'network_g: not set in the options, taken from the checkpoint {checkpoint}: input_residual: True'
        in basicsr_log.text
    )
    # inference: a network built without it is refused; building from the checkpoint adopts it
    with pytest.raises(ValueError, match=r'network: input_residual is False in the options but the checkpoint'):
        load_network_weights(DMTNet(**TINY), str(checkpoint))
    assert build_network_from_checkpoint({'type': 'DMTNet', **TINY}, str(checkpoint)).input_residual is True


def test_foreign_checkpoints_load_with_a_log_line_and_size_mismatches_name_the_variants(tmp_path, basicsr_log):
    foreign = tmp_path / 'foreign.pth'
    torch.save({'params': DMTNet(**TINY).state_dict()}, foreign)
    build_model(model_options(tmp_path, str(foreign)))
    assert (
        f'{foreign}: no record of the options that built this checkpoint; they could not be checked' in basicsr_log.text
    )
    message = r'checkpoint is DMTNet-T \(embed_dim 24\), network is DMTNet-S \(embed_dim 24\)\. \d+ missing keys'
    with pytest.raises(ValueError, match=message):
        build_model(model_options(tmp_path, str(foreign), variant='S'))
    with pytest.raises(ValueError, match=r'checkpoint is DMTNet-T \(embed_dim 24\), network is DMTNet-T\..*shape'):
        load_network_weights(DMTNet(**{**TINY, 'embed_dim': 96}), str(foreign))


def test_unreadable_checkpoints_are_named(tmp_path):
    empty, truncated = tmp_path / 'empty.pth', tmp_path / 'truncated.pth'
    empty.write_bytes(b'')
    checkpoint = saved_checkpoint(tmp_path)
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    model = build_model(model_options(tmp_path, None))
    for path, fragment in ((empty, 'checkpoint file is empty'), (truncated, 'cannot read the checkpoint')):
        with pytest.raises(ValueError, match=rf'{path}: {fragment}'):
            model.load_network(model.net_g, str(path))


def test_testing_without_weights_needs_an_explicit_request():
    test = shipped('test_DMTNet_synthetic.yml', is_train=False)
    refused(changed(test, lambda o: o['path'].update(pretrain_network_g=None)), 'path: pretrain_network_g is not set')
    refused(changed(test, lambda o: o['path'].pop('pretrain_network_g')), 'allow_random_weights: true')
    check_options(changed(test, lambda o: o['path'].update(pretrain_network_g=None, allow_random_weights=True)))
    check_options(changed(shipped('train_DMTNet_synthetic.yml'), lambda o: o['path'].update(pretrain_network_g=None)))


# ---------------------------------------------------------------------------------------------------------------
# (d) a training set smaller than one global batch


def loader_options(data: Path, batch: int, world_size: int = 1, ratio: int = 1) -> dict:
    opt = train_options('batch', data, total_iter=1, save_freq=1, batch=batch)
    opt['datasets']['train'].update(phase='train', dataset_enlarge_ratio=ratio)
    opt.update(world_size=world_size, rank=0, dist=False, num_gpu=0)
    return opt


def test_training_refuses_fewer_samples_than_one_global_batch(tmp_path):
    import basicsr.train

    data = make_data(tmp_path / 'data', 3)
    logger = logging.getLogger('test_mistakes')
    for batch, world_size, global_batch in ((4, 1, 4), (2, 4, 8)):
        with pytest.raises(ValueError, match=rf'3 training samples .* fewer than one global batch of {global_batch} '):
            basicsr.train.create_train_val_dataloader(loader_options(data, batch, world_size), logger)
    train_loader = basicsr.train.create_train_val_dataloader(loader_options(data, 4, ratio=2), logger)[0]
    assert len(train_loader) == 1


# ---------------------------------------------------------------------------------------------------------------
# (e) DPDD pairing by stems, prepare_dpdd's output and grid


def make_dpdd(root: Path, stems: list, size: int = 24, split: str = 'test') -> Path:
    rng = np.random.default_rng(1)
    for index, stem in enumerate(stems):
        image = rng.integers(0, 65536, (size, size, 3), dtype=np.uint16)
        write_png16(root / f'{split}_c' / 'source' / f'{stem}.png', image)
        write_png16(root / f'{split}_l' / 'source' / f'{stem}_L.png', image)
        write_png16(root / f'{split}_r' / 'source' / f'{stem}_R.png', image)
        write_png16(root / f'{split}_c' / 'target' / f't{index}.png', image)
    return root


def lose_one_left_view_and_add_another(root: Path, split: str = 'test'):
    (root / f'{split}_l' / 'source' / 'b_L.png').unlink()
    (root / f'{split}_l' / 'source' / 'b_L.png').parent.joinpath('z_L.png').write_bytes(
        (root / f'{split}_l' / 'source' / 'a_L.png').read_bytes()
    )


def test_dpdd_views_are_paired_by_stem(tmp_path):
    root = make_dpdd(tmp_path / 'DPDD', ['a', 'b', 'c'])
    assert len(DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})) == 3
    lose_one_left_view_and_add_another(root)
    with pytest.raises(ValueError, match=r'test_l/source/c_L.png and .*test_r/source/b_R.png.*left views: \[.z.\]'):
        DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})
    root = make_dpdd(tmp_path / 'DPDD2', ['a', 'b', 'c'])
    (root / 'test_c' / 'source' / 'c.png').rename(root / 'test_c' / 'source' / 'd.png')
    with pytest.raises(ValueError, match=r'only among the combined views: \[.d.\]'):
        DualPixelDataset({'dataroot_dpdd': str(root), 'split': 'test'})


def test_prepare_dpdd_refuses_an_output_inside_its_input(tmp_path):
    prepare = load_script('prepare_dpdd')
    root = make_dpdd(tmp_path / 'DPDD', ['a'], split='train')
    for out in (root, root / 'crops'):
        with pytest.raises(ValueError, match=rf'output folder {out / "train"} overlaps the input {root}'):
            prepare.main(['--input', str(root), '--layout', 'dpdd', '--out', str(out), '--crop-size', '16'])
    assert sorted(path.name for path in root.iterdir()) == ['train_c', 'train_l', 'train_r']


def test_prepare_dpdd_rerun_on_another_grid_never_mixes_grids(tmp_path, monkeypatch):
    prepare = load_script('prepare_dpdd')
    root = make_dpdd(tmp_path / 'DPDD', ['a', 'b'], size=32, split='train')
    out = tmp_path / 'crops'
    args = ['--input', str(root), '--layout', 'dpdd', '--out', str(out), '--crop-size', '16']
    assert prepare.prepare([*args, '--stride', '8']) == {'train': 2 * 9}
    assert len(list((out / 'train' / 'inputL').iterdir())) == 18
    written = []

    def crop_then_fail(sample, **kwargs):  # the second image never comes: an interrupted run
        if written:
            raise KeyboardInterrupt
        written.append(sample.name)
        return prepare_crop(sample, **kwargs)

    prepare_crop = prepare.crop_sample
    monkeypatch.setattr(prepare, 'crop_sample', crop_then_fail)
    with pytest.raises(KeyboardInterrupt):
        prepare.main([*args, '--stride', '16'])
    crops = sorted(path.name for path in (out / 'train' / 'inputL').iterdir())
    assert crops == ['t0_0_0.png', 't0_0_1.png', 't0_1_0.png', 't0_1_1.png']  # only the new 2 x 2 grid
    assert '"stride": 16' in (out / 'train' / GRID_RECORD).read_text()


# ---------------------------------------------------------------------------------------------------------------
# (f) crops larger than images, integer metric inputs, generator counts, LMDB files


def test_crops_larger_than_the_images_are_refused(tmp_path):
    data = make_data(tmp_path / 'data', 1, height=SIZE, width=SIZE + 16)
    for gt_size in (SIZE + 8, SIZE + 32):
        dataset = DualPixelDataset(
            {**train_options('x', data, 1, 1)['datasets']['train'], 'gt_size': gt_size, 'phase': 'train'}
        )
        with pytest.raises(
            ValueError, match=rf'target/000.png: image is 48x32, smaller than the training crop gt_size {gt_size}'
        ):
            dataset[0]  # fmt: skip


def test_metrics_scale_integer_images_by_their_dtype():
    rng = np.random.default_rng(0)
    target = rng.random((16, 16, 3))
    output = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    for dtype, levels in ((np.uint8, 255), (np.uint16, 65535)):
        a, b = (np.round(image * levels).astype(dtype) for image in (output, target))
        as_float = a / levels, b / levels
        assert calculate_dp_psnr(a, b, protocol='float') == pytest.approx(
            calculate_dp_psnr(*as_float, protocol='float')
        )
        assert calculate_dp_mae(a, b, protocol='float') == pytest.approx(calculate_dp_mae(*as_float, protocol='float'))
        assert calculate_dp_psnr(a, b) < 60
    with pytest.raises(ValueError, match='got int32'):
        calculate_dp_psnr(np.zeros((4, 4, 3), np.int32), np.zeros((4, 4, 3), np.int32))


def test_generators_refuse_counts_below_one_before_touching_anything(tmp_path, capsys):
    out = tmp_path / 'set'
    generate_dataset(out, 1, size=32, seed=0, progress=False)
    before = sorted(path.relative_to(out) for path in out.rglob('*'))
    script = load_script('make_synthetic_dp')
    for count in ('0', '-2'):
        with pytest.raises(SystemExit):
            script.main(['--count', count, '--size', '32', '--out', str(out), '--quiet'])
        assert f"--count: must be a whole number of at least 1, got '{count}'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=rf'count must be a whole number of at least 1, got 0; nothing in {out}'):
        generate_dataset(out, 0, size=32, progress=False)
    assert sorted(path.relative_to(out) for path in out.rglob('*')) == before


def test_broken_lmdb_files_are_named_not_mapped(tmp_path):
    out = generate_dataset(tmp_path / 'set', 2, size=32, seed=0, write_lmdb=True, progress=False)
    options = {f'dataroot_{key}': str(out / f'{key}.lmdb') for key in ('lqL', 'lqR')}
    options.update(dataroot_gt=str(out / 'gt.lmdb'), io_backend={'type': 'lmdb'})
    assert len(DualPixelDataset(dict(options))) == 2
    data = out / 'gt.lmdb' / 'data.mdb'
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 2])
    with pytest.raises(
        ValueError, match=rf'{data}: LMDB file is truncated \(\d+ bytes, its index needs {len(content)}\)'
    ):
        DualPixelDataset(dict(options))
    data.write_bytes(b'')
    with pytest.raises(ValueError, match=rf'{data}: not an LMDB data file'):
        DualPixelDataset(dict(options))


# ---------------------------------------------------------------------------------------------------------------
# The numbered cases, end to end


def test_case_1_misspelled_pretrain_key_stops_the_test_entry(tmp_path, experiment_name):
    data = make_data(tmp_path / 'data', 2)
    opt = eval_options(experiment_name('case1'), data, tmp_path / 'net_g.pth')
    opt['path']['pretrain_netwrok_g'] = opt['path'].pop('pretrain_network_g')
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'typo.yml', opt)], tmp_path)
    assert result.returncode != 0
    assert "path: unknown option 'pretrain_netwrok_g' (did you mean pretrain_network_g?)" in last_line(result.stderr)
    assert not (REPO / 'results' / opt['name']).exists()


def test_random_weights_asked_for_explicitly_run_through_the_test_entry(tmp_path, experiment_name):
    data = make_data(tmp_path / 'data', 2)
    opt = eval_options(experiment_name('random'), data, tmp_path / 'net_g.pth')
    opt['path'].update(pretrain_network_g=None, allow_random_weights=True)
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'random.yml', opt)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((REPO / 'results' / opt['name']).glob('metrics_*_summary.csv'))


def test_case_2_structural_options_travel_with_the_checkpoint(tmp_path):
    checkpoint = saved_checkpoint(tmp_path, input_residual=True)
    lq = torch.rand(1, 6, SIZE, SIZE)
    reference = build_model(model_options(tmp_path, str(checkpoint), input_residual=True))
    adopted = build_model(model_options(tmp_path, str(checkpoint)))  # the option file leaves it out
    with torch.no_grad():
        assert torch.equal(reference.net_g(lq), adopted.net_g(lq))
    opt = model_options(tmp_path, str(checkpoint))
    adopt_checkpoint_options(opt)
    assert opt['network_g']['input_residual'] is True
    with pytest.raises(ValueError, match=r'input_residual is False in the options but the checkpoint was built with'):
        load_network_weights(DMTNet(**TINY), str(checkpoint))  # what --variant T without the option did


def test_case_3_fewer_training_images_than_the_batch(tmp_path, experiment_name):
    data = make_data(tmp_path / 'data', 3)
    opt = train_options(experiment_name('case3'), data, total_iter=2, save_freq=2, batch=4)
    result = run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'small.yml', opt)], tmp_path)
    assert result.returncode != 0
    assert 'datasets: train (tiny_train): 3 training samples' in last_line(result.stderr)
    assert 'fewer than one global batch of 4 (batch size 4 per process x 1 process(es))' in last_line(result.stderr)
    assert not list((REPO / 'experiments' / opt['name'] / 'models').glob('*.pth'))


def test_case_4_dpdd_views_of_other_scenes_stop_the_test_pipeline_and_prepare(tmp_path, experiment_name, monkeypatch):
    root = make_dpdd(tmp_path / 'DPDD', ['a', 'b', 'c'], size=SIZE)
    lose_one_left_view_and_add_another(root)
    checkpoint = tmp_path / 'net_g.pth'
    torch.save({'params': DMTNet(**TINY).state_dict()}, checkpoint)
    opt = eval_options(experiment_name('case4'), root, checkpoint)
    opt['datasets']['test_1'] = {
        'name': 'dpdd',
        'type': 'DualPixelDataset',
        'dataroot_dpdd': str(root),
        'split': 'test',
    }
    monkeypatch.setattr(sys, 'argv', ['test.py', '-opt', str(write_yaml(tmp_path / 'dpdd.yml', opt))])
    with pytest.raises(ValueError, match=r'views paired by sorted position name different scenes'):
        basicsr_test.test_pipeline(str(REPO))  # what dmtnet_arch/test.py runs
    prepare = load_script('prepare_dpdd')
    with pytest.raises(ValueError, match=r'test_l/source/c_L.png and .*test_r/source/b_R.png'):
        prepare.main(['--input', str(root), '--layout', 'dpdd', '--split', 'test', '--out', str(tmp_path / 'out')])
    assert not (tmp_path / 'out' / 'test' / 'inputL').exists()


def test_compat_patches_are_in_place():
    import basicsr.data
    import basicsr.test
    import basicsr.train

    from dmtnet_arch.models.dual_pixel_model import DualPixelModel

    assert DualPixelModel.load_network is compat.load_network_checked
    assert DualPixelModel.__mro__[1] is compat.PluginModelFixes
    assert getattr(basicsr.train.parse_options, 'checks_options', False)
    assert getattr(basicsr.test.parse_options, 'checks_options', False)
    assert getattr(basicsr.train.build_dataloader, 'checks_batch', False)
    assert getattr(basicsr.data.build_dataloader, 'checks_batch', False)
