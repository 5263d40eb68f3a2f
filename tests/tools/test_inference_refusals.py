"""scripts/inference.py never writes among its inputs, finds an unwritable output or a full disk before or at
the first image, and names identical views."""

import errno
import logging
import shutil
from pathlib import Path

import pytest

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch.data.dual_pixel_dataset import DualPixelDataset
from dmtnet_arch.tools import inference_io
from dmtnet_arch.utils import file_util
from dmtnet_arch.utils.img_util import write_image
from tests.helpers import eval_options, full_disk_link, load_script, make_data, random_rgb, snapshot


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
    script = load_script('inference')
    monkeypatch.setattr(script, 'load_network', lambda *a, **k: pytest.fail('the network was built'))
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
    script = load_script('inference')
    monkeypatch.setattr(script, 'load_network', lambda *a, **k: pytest.fail('the network was built'))
    argv = ['--weights', str(checkpoint), '--input', str(tmp_path / 'in'), '--output', str(output), '--quiet']
    with pytest.raises(OSError, match=f'--output {output}: cannot write there') as refused:
        script.main(argv)
    if case == 'full disk':
        assert refused.value.errno == errno.ENOSPC


def test_a_full_disk_stops_inference_at_the_first_image_naming_it(tmp_path, checkpoint, monkeypatch):
    for name in ('a', 'b'):
        write_image(tmp_path / f'in/{name}_L.png', random_rgb(1))
        write_image(tmp_path / f'in/{name}_R.png', random_rgb(2))
    script = load_script('inference')
    runs = []
    build = script.load_network

    def counting_build(*args, **kwargs):
        net, network_options = build(*args, **kwargs)
        net.register_forward_hook(lambda *_: runs.append(1))
        return net, network_options

    monkeypatch.setattr(script, 'load_network', counting_build)
    link = full_disk_link(tmp_path)
    monkeypatch.setattr(file_util, 'temporary_name', lambda path: link)  # the images, not the probe, hit the full disk
    argv = ['--weights', str(checkpoint), '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')]
    with pytest.raises(OSError, match=f'{tmp_path / "out" / "a.png"}: disk full'):
        script.main([*argv, '--quiet', '--device', 'cpu'])
    assert len(runs) == 1  # b was not computed only to fail the same way


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

    script = load_script('inference')
    argv = ['--weights', str(checkpoint), '--left', str(data / 'inputL'), '--right', str(data / 'inputR')]
    with caplog.at_level(logging.WARNING, logger='dmtnet_arch.tools.inference'):
        assert script.main([*argv, '--output', str(tmp_path / 'out'), '--quiet', '--device', 'cpu']) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith('001: the left view') and 'identical' in warnings[0]
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['000.png', '001.png']
