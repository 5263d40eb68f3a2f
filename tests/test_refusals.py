"""Never lose a user's data, never exit 0 on a wrong result (issue 17): inference refusing an output among its
inputs or one it cannot write, a full disk named, and the other refusals of docs/errors.md, section 6."""

import copy
import errno
import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import test_training as helpers
import torch
from test_mistakes import refused, shipped
from test_training import PYTHON, TEST_ENTRY, eval_options, last_line, make_data, run, write_yaml

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.archs.dpdnet_arch import DPDNet
from dmtnet_arch.archs.restormer_arch import Restormer
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_mae, calculate_dp_psnr, calculate_dp_ssim
from dmtnet_arch.tools import inference, inference_io
from dmtnet_arch.utils import file_util
from dmtnet_arch.utils.checkpoint import RECORD_KEY, load_network_weights, network_record
from dmtnet_arch.utils.img_util import write_image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'scripts' / 'inference.py'
new_name = helpers.new_name  # the fixture: unique experiment names, outputs removed afterwards
TINY = {'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'embed_dim': 24}  # = test_training's


def load_inference_script():
    spec = importlib.util.spec_from_file_location('inference_script_refusals', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_rgb(seed: int, height: int = 16, width: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (height, width, 3)).astype(np.uint16)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    """A tiny DMTNet-T checkpoint with its record (built_with), as training writes it; not the initial weights of
    manual_seed 0."""
    torch.manual_seed(1)
    net = DMTNet(**TINY)
    path = tmp_path_factory.mktemp('weights') / 'net.pth'
    torch.save({'params': net.state_dict(), RECORD_KEY: network_record(net, None)}, path)
    return path


def full_disk_link(folder: Path) -> Path:
    """A name whose writes fail with ENOSPC as on a full disk: a link to /dev/full."""
    link = folder / 'full_disk'
    link.symlink_to('/dev/full')
    return link


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# item 1: inference never writes among its inputs, and finds an unwritable output before running


def layout_and_arguments(root: Path, case: str) -> list:
    """Inputs of ``case`` under ``root`` and the command-line arguments that put the output among them."""
    if case == 'left folder':
        for view in ('inputL', 'inputR'):
            write_image(root / 'DIR' / view / 'a.png', random_rgb(len(view)))
        return ['--left', root / 'DIR/inputL', '--right', root / 'DIR/inputR', '--output', root / 'DIR/inputL']
    if case == 'inside --input':
        for view in ('inputL', 'inputR'):
            write_image(root / 'X' / view / 'a.png', random_rgb(len(view)))
        return ['--input', root / 'X', '--output', root / 'X/inputR']
    if case == 'DPDD combined source':
        write_image(root / 'DPDD/test_l/source/s_L.png', random_rgb(1))
        write_image(root / 'DPDD/test_r/source/s_R.png', random_rgb(2))
        write_image(root / 'DPDD/test_c/source/s_C.png', random_rgb(3))
        return ['--input', root / 'DPDD', '--output', root / 'DPDD/test_c/source']
    # two files without _L/_R tokens: the output of 'a' would be named a.png, the left view's own name
    write_image(root / 'shots/a.png', random_rgb(1))
    write_image(root / 'shots/b.png', random_rgb(2))
    return ['--left', root / 'shots/a.png', '--right', root / 'shots/b.png', '--output', root / 'shots']


@pytest.mark.parametrize(
    ('case', 'message'),
    [
        ('left folder', 'is the input folder of --left'),
        ('inside --input', 'is inside the input folder of --input'),
        ('DPDD combined source', 'is inside the input folder of --input'),
        ('files in the output folder', 'is the folder of --left'),
    ],
)
def test_output_among_the_inputs_is_refused_before_anything_runs(tmp_path, checkpoint, monkeypatch, case, message):
    argv = [str(a) for a in layout_and_arguments(tmp_path, case)]
    before = snapshot(tmp_path)
    script = load_inference_script()
    monkeypatch.setattr(script, 'build_from_options', lambda *a, **k: pytest.fail('the network was built'))
    with pytest.raises(ValueError, match=message) as refused:
        script.main(['--weights', str(checkpoint), *argv, '--quiet', '--device', 'cpu'])
    assert f'--output {argv[-1]} ' in str(refused.value)
    assert snapshot(tmp_path) == before  # every input as it was, nothing written


@pytest.mark.parametrize('case', ['output is a file', 'inside a file', 'full disk'])
def test_unwritable_output_is_an_error_before_the_network_runs(tmp_path, checkpoint, monkeypatch, case):
    write_image(tmp_path / 'in/a_L.png', random_rgb(1))
    write_image(tmp_path / 'in/a_R.png', random_rgb(2))
    output = tmp_path / 'out'
    if case == 'output is a file':
        output.write_bytes(b'')
    elif case == 'inside a file':
        (tmp_path / 'file').write_bytes(b'')
        output = tmp_path / 'file' / 'out'
    else:
        output.mkdir()
        link = full_disk_link(tmp_path)
        monkeypatch.setattr(inference_io, 'temporary_name', lambda path: link)
    script = load_inference_script()
    monkeypatch.setattr(script, 'build_from_options', lambda *a, **k: pytest.fail('the network was built'))
    argv = ['--weights', str(checkpoint), '--input', str(tmp_path / 'in'), '--output', str(output), '--quiet']
    with pytest.raises(OSError, match=f'--output {output}: cannot write there') as refused:
        script.main(argv)
    if case == 'full disk':
        assert refused.value.errno == errno.ENOSPC


def test_a_full_disk_stops_inference_at_the_first_image_naming_it(tmp_path, checkpoint, monkeypatch):
    for name in ('a', 'b'):
        write_image(tmp_path / f'in/{name}_L.png', random_rgb(1))
        write_image(tmp_path / f'in/{name}_R.png', random_rgb(2))
    script = load_inference_script()
    runs = []
    build = script.build_from_options

    def counting_build(*args, **kwargs):
        net = build(*args, **kwargs)
        net.register_forward_hook(lambda *_: runs.append(1))
        return net

    monkeypatch.setattr(script, 'build_from_options', counting_build)
    link = full_disk_link(tmp_path)
    monkeypatch.setattr(file_util, 'temporary_name', lambda path: link)  # the images, not the probe, hit the full disk
    argv = ['--weights', str(checkpoint), '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')]
    with pytest.raises(OSError, match=f'{tmp_path / "out" / "a.png"}: disk full'):
        script.main([*argv, '--quiet', '--device', 'cpu'])
    assert len(runs) == 1  # b was not computed only to fail the same way


@pytest.mark.parametrize('writer', ['bytes', 'torch'])
def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch, writer):
    link = full_disk_link(tmp_path)
    monkeypatch.setattr(file_util, 'temporary_name', lambda path: link)
    target = tmp_path / 'models' / 'net_g_10.pth'
    with pytest.raises(OSError, match=f'{target}: disk full') as full:
        if writer == 'bytes':
            file_util.write_bytes_atomically(target, bytes(4096))
        else:
            file_util.save_torch_atomically({'params': {'w': torch.zeros(4096)}}, target)
    assert full.value.errno == errno.ENOSPC
    assert not target.exists() and not os.path.lexists(link)


@pytest.mark.parametrize('failure', ['lmdb', 'os'])
def test_a_full_disk_while_writing_an_lmdb_names_it_and_leaves_no_partial_database(tmp_path, monkeypatch, failure):
    """prepare_dpdd.py --lmdb and make_synthetic_dp.py --lmdb write through write_view_lmdb; LMDB reports a full
    disk in its own exception (a real ENOSPC cannot be made for a memory-mapped file here, so it is raised as LMDB
    and the OS do)."""
    import lmdb
    from basicsr.utils import lmdb_util

    from dmtnet_arch.utils.lmdb_util import write_view_lmdb

    write_image(tmp_path / 'inputL/a.png', random_rgb(1))

    def full(folder, lmdb_path, *args, **kwargs):
        Path(lmdb_path).mkdir()
        (Path(lmdb_path) / 'data.mdb').write_bytes(bytes(1024))
        if failure == 'lmdb':
            raise lmdb.Error(f'{lmdb_path}: {os.strerror(errno.ENOSPC)}')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(lmdb_util, 'make_lmdb_from_imgs', full)
    target = tmp_path / 'lqL.lmdb'
    with pytest.raises(OSError, match=f'{re.escape(str(target))}: disk full') as error:
        write_view_lmdb(tmp_path / 'inputL', target, ['a.png'])
    assert error.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == ['inputL']  # the partial database is removed


# ---------------------------------------------------------------------------------------------------------------
# item 2: identical left and right views


def test_identical_views_are_an_error_in_datasets_and_a_named_warning_in_inference(tmp_path, checkpoint, caplog):
    data = make_data(tmp_path / 'data', 2)
    shutil.copy(data / 'inputL' / '001.png', data / 'inputR' / '001.png')  # one view copied over the other
    opt = {**eval_options('identical', data, None)['datasets']['test_1'], 'phase': 'test'}
    dataset = DualPixelDataset(opt)
    assert dataset[0]['lq'].shape[0] == 6  # the intact pair still reads
    with pytest.raises(ValueError, match='identical, pixel for pixel') as error:
        dataset[1]
    for text in (str(data / 'inputL' / '001.png'), str(data / 'inputR' / '001.png'), 'dataroot_lqL and dataroot_lqR'):
        assert text in str(error.value)

    script = load_inference_script()
    argv = ['--weights', str(checkpoint), '--left', str(data / 'inputL'), '--right', str(data / 'inputR')]
    with caplog.at_level(logging.WARNING, logger='dmtnet_arch.tools.inference'):
        assert script.main([*argv, '--output', str(tmp_path / 'out'), '--quiet', '--device', 'cpu']) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith('001: the left view') and 'identical' in warnings[0]
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['000.png', '001.png']


# ---------------------------------------------------------------------------------------------------------------
# item 3: a non-strict load that fills nothing, and a peer's checkpoint named


def peer_checkpoint(folder: Path, peer: str, record: bool) -> Path:
    net = {'Restormer': lambda: Restormer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 1, 1)),
           'DPDNet': lambda: DPDNet(base_channels=4)}[peer]()  # fmt: skip
    path = folder / f'{peer}.pth'
    saved = {'params': net.state_dict(), RECORD_KEY: network_record(net)} if record else net.state_dict()
    torch.save(saved, path)
    return path


@pytest.mark.parametrize(('peer', 'record'), [('Restormer', True), ('DPDNet', False)])
def test_non_strict_load_of_another_architecture_stops_the_test_entry(tmp_path, new_name, peer, record):
    weights = peer_checkpoint(tmp_path, peer, record)
    opt = eval_options(new_name('nonstrict'), make_data(tmp_path / 'data', 2), weights)
    opt['path']['strict_load_g'] = False
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'test.yml', opt)], tmp_path)
    assert result.returncode != 0
    message = last_line(result.stderr)
    assert f'{weights}: strict_load is false, but only 0 of the network' in message
    assert f'checkpoint is {peer}, network is DMTNet-T' in message


@pytest.mark.parametrize('peer', ['Restormer', 'DPDNet'])
def test_a_peers_checkpoint_given_to_dmtnet_names_the_peer(tmp_path, peer):
    weights = peer_checkpoint(tmp_path, peer, record=False)
    net = DMTNet(**TINY)
    with pytest.raises(ValueError, match=f'{weights}: the checkpoint does not fit the network: checkpoint is {peer}, '):
        load_network_weights(net, str(weights))
    bigger = DMTNet(**{**TINY, 'variant': 'S', 'num_rbm': 1, 'num_rm': 1, 'rgm_channels': 8})
    load_network_weights(bigger, str(checkpoint_of(net, tmp_path)), strict=False)  # a smaller variant: allowed
    for key, value in net.state_dict().items():
        assert torch.equal(bigger.state_dict()[key], value)


def checkpoint_of(net: torch.nn.Module, folder: Path) -> Path:
    path = folder / 'own.pth'
    torch.save({'params': net.state_dict()}, path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# items 4 and 6: ema_decay in [0, 1), schedules that cover total_iter


@pytest.mark.parametrize('decay', [1.0, 1.5, -0.1])
def test_ema_decay_must_be_in_zero_to_one(decay):
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['train']['ema_decay'] = decay
    refused(opt, f'train: ema_decay must be at least 0 and below 1, got {decay}')


@pytest.mark.parametrize(
    ('scheduler', 'fragments'),
    [
        ({'type': 'CosineAnnealingRestartLR', 'periods': [4000], 'restart_weights': [1]},
         ['periods [4000] sum to 4000 iterations, fewer than train: total_iter 6000', 'TypeError at iteration 4001',
          'lengthen the last period by 2000']),
        ({'type': 'CosineAnnealingRestartCyclicLR', 'periods': [2000, 3000], 'restart_weights': [1, 1],
          'eta_mins': [3e-4, 1e-6]},
         ['periods [2000, 3000] sum to 5000', 'the last 1000 iterations would run at the floor eta_mins[-1]']),
        ({'type': 'CosineAnnealingRestartLR', 'periods': [3000, 3000], 'restart_weights': [1]},
         ['train: scheduler: restart_weights has 1 entries but periods has 2']),
    ],
)  # fmt: skip
def test_schedules_must_cover_total_iter(scheduler, fragments):
    opt = shipped('train_DMTNet_synthetic.yml')
    opt['train']['scheduler'] = copy.deepcopy(scheduler)
    refused(opt, *fragments)
    opt['train']['total_iter'] = sum(scheduler['periods'])
    if len(scheduler['restart_weights']) == len(scheduler['periods']):
        from dmtnet_arch.utils.options import check_options

        check_options(opt)  # periods that cover the run pass


# ---------------------------------------------------------------------------------------------------------------
# item 8: float images on another scale than [0, 1]


@pytest.mark.parametrize(
    ('metric', 'scale', 'which'),
    [(calculate_dp_psnr, 255.0, 'img (the output)'), (calculate_dp_ssim, -1.0, 'img2 (the target)'),
     (calculate_dp_mae, 255.0, 'img2 (the target)')],
)  # fmt: skip
def test_metrics_refuse_float_images_outside_zero_one(metric, scale, which):
    rng = np.random.default_rng(0)
    good, bad = rng.random((16, 16, 3)), rng.random((16, 16, 3)) * scale
    pair = (bad, good) if which.startswith('img ') else (good, bad)
    with pytest.raises(ValueError, match=rf'{metric.__name__}: {re.escape(which)} is a float image'):
        metric(*pair)
    overshoot = np.clip(good * 1.02 - 0.01, -0.01, 1.01)  # a network's small overshoot: clamped, scored
    assert np.isfinite(metric(overshoot, good))


# ---------------------------------------------------------------------------------------------------------------
# raw or misleading messages: each names the file or option at fault


@pytest.mark.parametrize('layout', ['view folders', 'dpdd'])
def test_home_is_expanded_in_every_dataset_path(tmp_path, monkeypatch, layout):
    monkeypatch.setenv('HOME', str(tmp_path))
    if layout == 'view folders':
        make_data(tmp_path / 'data', 1)
        roots = {key: f'~/data/{folder}' for key, folder in
                 (('dataroot_lqL', 'inputL'), ('dataroot_lqR', 'inputR'), ('dataroot_gt', 'target'))}  # fmt: skip
    else:
        for seed, (folder, name) in enumerate(
            (('test_l/source', 's_L'), ('test_r/source', 's_R'), ('test_c/target', 's'))
        ):
            write_image(tmp_path / 'DPDD' / folder / f'{name}.png', random_rgb(seed))
        roots = {'dataroot_dpdd': '~/DPDD', 'split': 'test'}
    (tmp_path / 'categories.txt').write_text('images 1\nindoor 0\n')
    opt = {'name': 'home', 'type': 'DualPixelDataset', 'phase': 'test', 'category_file': '~/categories.txt', **roots}
    item = DualPixelDataset(opt)[0]
    assert item['lq_path'].startswith(str(tmp_path)) and item['category'] == 'indoor'


@pytest.mark.parametrize('listed', [['nonsense'], ['a', 'b', 'garbage_1', 'garbage_2']])
def test_a_meta_info_file_listing_other_keys_is_blamed_not_the_left_lmdb(tmp_path, listed):
    from test_dual_pixel_dataset import folder_opt, make_folder_layout, make_lmdbs

    root = make_folder_layout(tmp_path / 'dp')
    meta_info = tmp_path / 'meta_info.txt'
    meta_info.write_text(''.join(f'{key}.png (16,24,3) 1\n' for key in listed))
    opt = {**folder_opt(root), **make_lmdbs(root), 'meta_info_file': str(meta_info)}
    with pytest.raises(ValueError, match=f'^{re.escape(str(meta_info))}: lists key') as error:
        DualPixelDataset(opt)
    assert f'the target LMDB {root / "gt.lmdb"} does not hold' in str(error.value)
    assert 'lqL.lmdb' not in str(error.value)


@pytest.mark.parametrize(('height', 'width'), [(5, 20), (20, 6)])
def test_ssim_on_an_image_smaller_than_its_window_names_the_metric_and_the_file(height, width):
    import types

    from dmtnet_arch.models.dual_pixel_model import DualPixelModel

    small = np.random.default_rng(0).random((height, width, 3))
    message = f'calculate_dp_ssim: the image is {width} x {height} pixels, smaller than the 7 x 7 window'
    with pytest.raises(ValueError, match=message):
        calculate_dp_ssim(small, small)
    model = types.SimpleNamespace(image_metrics=lambda opts: {'ssim': calculate_dp_ssim(small, small)})
    with pytest.raises(ValueError, match=f'^in/small_L.png: {message}'):
        DualPixelModel.scored(model, {}, {'lq_path': ['in/small_L.png']})


@pytest.mark.parametrize('splits', [['train'], ['train', 'val']])
def test_a_dpdd_root_without_the_split_suggests_split(tmp_path, splits):
    from dmtnet_arch.data.data_util import find_input_pairs

    for split in splits:
        write_image(tmp_path / f'DPDD/{split}_l/source/s_L.png', random_rgb(1))
        write_image(tmp_path / f'DPDD/{split}_r/source/s_R.png', random_rgb(2))
    with pytest.raises(FileNotFoundError, match=rf"without a 'test' split .*it has {', '.join(splits)}: pass --split"):
        find_input_pairs(tmp_path / 'DPDD', 'test')


@pytest.mark.parametrize(
    ('flags', 'message'),
    [(['--height', '0', '--width', '64'], '--height must be a positive number of pixels, got 0'),
     (['--height', '64', '--width', '-3'], '--width must be a positive number of pixels, got -3'),
     (['--opset', '16'], '--opset must be at least 17')],
)  # fmt: skip
def test_export_onnx_names_a_bad_size_or_opset_before_building(tmp_path, flags, message):
    spec = importlib.util.spec_from_file_location('export_onnx_refusals', REPO / 'scripts' / 'export_onnx.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ['-opt', str(tmp_path / 'absent.yml'), '--output', str(tmp_path / 'm.onnx'), *flags]
    with pytest.raises(ValueError, match=re.escape(message)):  # before the (absent) option file is read
        script.main(argv)


@pytest.mark.parametrize('record', ['DMTNet-T', {'type': 'DMTNet'}, {'type': 7, 'options': {}}])
def test_a_malformed_built_with_record_names_the_file(tmp_path, record):
    net = DMTNet(**TINY)
    path = tmp_path / 'edited.pth'
    torch.save({'params': net.state_dict(), RECORD_KEY: record}, path)
    with pytest.raises(ValueError, match=f'^{re.escape(str(path))}: malformed built_with record'):
        load_network_weights(net, str(path))
    with pytest.raises(ValueError, match=f'^{re.escape(str(path))}: malformed built_with record'):
        inference.options_from_checkpoint(str(path))


# ---------------------------------------------------------------------------------------------------------------
# item 9: leaderboard rows labelled by option file, results kept per row, a failure's own message


def test_leaderboard_keeps_two_option_files_of_one_network_and_name_apart(tmp_path, checkpoint):
    from dmtnet_arch.tools.leaderboard import run_leaderboard

    data = make_data(tmp_path / 'data', 2)
    files = []
    for folder, weights in (('a', checkpoint), ('b', None)):
        opt = eval_options('same_name', data, weights)
        opt['path']['allow_random_weights'] = weights is None
        (tmp_path / folder).mkdir()
        files.append(write_yaml(tmp_path / folder / 'test.yml', opt))
    broken = eval_options('broken', data, checkpoint)
    broken['datasets']['test_1']['dataroot_gt'] = str(tmp_path / 'no_such_folder')
    files.append(write_yaml(tmp_path / 'broken.yml', broken))
    table = run_leaderboard(files, tmp_path / 'out')
    assert [row['model'] for row in table] == [f'DMTNet-T ({files[0]})', f'DMTNet-T ({files[1]})', 'broken']
    assert table[0]['weights'] == str(checkpoint) and table[1]['weights'].startswith('untrained')
    assert table[0]['combined PSNR'] != table[1]['combined PSNR'].removesuffix(' (untrained)')
    for folder in ('01_test', '02_test'):  # each row's per-image results kept, none archived
        assert (tmp_path / 'out/runs' / folder / 'results/same_name/metrics_tiny_test.csv').is_file()
    assert not list((tmp_path / 'out/runs').rglob('*_archived_*'))
    assert table[2]['weights'].startswith('failed: ') and 'no_such_folder' in table[2]['weights']


@pytest.mark.parametrize(
    ('stderr', 'reason'),
    [('Traceback (most recent call last):\n  File "x.py"\nValueError: x.png: bad\nTesting:  50%|#####     | 1/2\r',
      'ValueError: x.png: bad'),
     ('EvaluationError: Evaluating tiny failed\n\rTesting: 100%|##########| 2/2\r\n',
      'EvaluationError: Evaluating tiny failed')],
)  # fmt: skip
def test_a_failed_leaderboard_row_shows_the_exception_not_a_progress_bar(stderr, reason):
    from dmtnet_arch.tools.leaderboard import failure_reason

    assert failure_reason(stderr) == reason


# ---------------------------------------------------------------------------------------------------------------
# item 5: resuming continues this experiment's own run, or is refused naming what differs


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    """Two iterations of a tiny run, a training state saved at 2 (with its run options)."""
    tmp = tmp_path_factory.mktemp('first_run')
    data, other_data = make_data(tmp / 'data', 2), make_data(tmp / 'other_data', 2, seed=1)
    name = helpers.unique_name('first_run')
    opt = helpers.train_options(name, data, total_iter=2, save_freq=2, batch=1)
    try:
        helpers.check_ok(run([PYTHON, helpers.TRAIN_ENTRY, '-opt', write_yaml(tmp / 'first.yml', opt)], tmp))
        yield {'tmp': tmp, 'opt': opt, 'other_data': other_data, 'experiment': helpers.REPO / 'experiments' / name}
    finally:
        helpers.remove_outputs(helpers.REPO, name)


def second_run(first_run: dict, case: str, new_name) -> tuple[dict, list]:
    """Options of a second run that must not continue the first, and its extra arguments."""
    opt = copy.deepcopy(first_run['opt'])
    opt['train']['total_iter'] = 4
    if case == 'other data, same name':
        opt['datasets']['train']['dataroot_lqL'] = str(first_run['other_data'] / 'inputL')
        return opt, ['--auto_resume']
    if case == 'other schedule, same name':
        opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [4], 'restart_weights': [1]}
        return opt, ['--auto_resume']
    opt['name'] = new_name('second_run')  # another experiment, resuming the first one's state
    opt['path']['resume_state'] = str(first_run['experiment'] / 'training_states' / '2.state')
    return opt, []


@pytest.mark.parametrize(
    ('case', 'fragments'),
    [('other data, same name', ['--auto_resume found', 'data: dataroot_lqL', 'other_data/inputL']),
     ('other schedule, same name', ['--auto_resume found', "schedule: scheduler 'MultiStepLR' -> "
                                    "'CosineAnnealingRestartLR'"]),
     ('state of another experiment', ['path: resume_state', 'is not a state of this experiment',
                                      'set path: pretrain_network_g to'])],
)  # fmt: skip
def test_resuming_another_run_is_refused_naming_the_difference(first_run, new_name, case, fragments):
    opt, extra = second_run(first_run, case, new_name)
    experiment = first_run['experiment']
    before = snapshot(experiment / 'models'), snapshot(experiment / 'training_states')
    yml = write_yaml(first_run['tmp'] / 'second.yml', opt)
    result = run([PYTHON, helpers.TRAIN_ENTRY, '-opt', yml, *extra], first_run['tmp'])
    assert result.returncode != 0
    message = last_line(result.stderr)
    assert str(experiment / 'training_states' / '2.state') in message
    for fragment in fragments:
        assert fragment in message, message
    assert (snapshot(experiment / 'models'), snapshot(experiment / 'training_states')) == before  # untouched
    assert not list(experiment.parent.glob(f'{experiment.name}_archived_*'))


def test_a_resumed_run_trains_as_the_uninterrupted_one(tmp_path, new_name):
    """Random 32 x 32 crops of two 64 x 64 images and random flips, batch 1: the state at iteration 3 lies in the
    middle of epoch 1. Resumed there, the run must skip the batch of epoch 1 it trained on and draw the crops the
    uninterrupted run drew; BasicSR alone replays that batch with the generators of a fresh start."""
    data = make_data(tmp_path / 'data', 2, height=64, width=64)
    one_thread = {'OMP_NUM_THREADS': '1'}

    def options(name: str, total_iter: int) -> Path:
        opt = helpers.train_options(name, data, total_iter=total_iter, save_freq=3, batch=1)
        opt['datasets']['train'].update(gt_size=32, use_hflip=True, use_vflip=True)
        return write_yaml(tmp_path / f'{name}_{total_iter}.yml', opt)

    resumed, straight = new_name('resumed'), new_name('straight')
    helpers.check_ok(run([PYTHON, helpers.TRAIN_ENTRY, '-opt', options(resumed, 3)], tmp_path, one_thread))
    second = run([PYTHON, helpers.TRAIN_ENTRY, '-opt', options(resumed, 6), '--auto_resume'], tmp_path, one_thread)
    helpers.check_ok(second)
    assert 'Resuming training from epoch: 1, iter: 3.' in second.stderr
    helpers.check_ok(run([PYTHON, helpers.TRAIN_ENTRY, '-opt', options(straight, 6)], tmp_path, one_thread))
    weights = [helpers.load_params(helpers.REPO / 'experiments' / name / 'models' / 'net_g_6.pth')
               for name in (resumed, straight)]  # fmt: skip
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
