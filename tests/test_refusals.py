"""Never lose a user's data, never exit 0 on a wrong result (issue 17): inference refusing an output among its
inputs or one it cannot write, a full disk named, and the other refusals of docs/errors.md, section 6."""

import errno
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch import atomic_io, inference
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.atomic_io import write_image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'scripts' / 'inference.py'
TINY = {'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 16, 'embed_dim': 24}


def load_inference_script():
    spec = importlib.util.spec_from_file_location('inference_script_refusals', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_rgb(seed: int, height: int = 16, width: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, (height, width, 3)).astype(np.uint16)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    """A tiny DMTNet-T checkpoint with its record (built_with), as training writes it."""
    from dmtnet_arch.checkpoint import RECORD_KEY, network_record

    torch.manual_seed(0)
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
        monkeypatch.setattr(inference, 'temporary_name', lambda path: link)
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
    monkeypatch.setattr(atomic_io, 'temporary_name', lambda path: link)  # the images, not the probe, hit the full disk
    argv = ['--weights', str(checkpoint), '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')]
    with pytest.raises(OSError, match=f'{tmp_path / "out" / "a.png"}: disk full'):
        script.main([*argv, '--quiet', '--device', 'cpu'])
    assert len(runs) == 1  # b was not computed only to fail the same way


@pytest.mark.parametrize('writer', ['bytes', 'torch'])
def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch, writer):
    link = full_disk_link(tmp_path)
    monkeypatch.setattr(atomic_io, 'temporary_name', lambda path: link)
    target = tmp_path / 'models' / 'net_g_10.pth'
    with pytest.raises(OSError, match=f'{target}: disk full') as full:
        if writer == 'bytes':
            atomic_io.write_bytes_atomically(target, bytes(4096))
        else:
            atomic_io.save_torch_atomically({'params': {'w': torch.zeros(4096)}}, target)
    assert full.value.errno == errno.ENOSPC
    assert not target.exists() and not os.path.lexists(link)
