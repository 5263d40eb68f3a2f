"""tools/rerender and scripts/rerender_targets.py: real targets re-blurred by the generator's PSFs."""

import numpy as np
import pytest

from dmtnet_arch.data import synthetic_dp as sdp
from dmtnet_arch.data.data_util import VIEW_FOLDERS
from dmtnet_arch.tools import dp_statistics as stats
from dmtnet_arch.tools import rerender
from dmtnet_arch.utils.disparity_util import grey, horizontal_shift
from dmtnet_arch.utils.img_util import float_to_integer, read_image, to_float, write_png
from tests.helpers import load_script

SIZE = (192, 288)


def write_capture(folder, radius, bits: int, index: int = 0) -> None:
    """A photograph behind the focal plane at ``radius`` (a value, or a map), rendered by the generator and stored
    at ``bits``."""
    texture = sdp.random_texture(sdp.collect_sources(), SIZE, np.random.default_rng(index))
    layer = sdp.Layer(texture, np.ones(SIZE, np.float32), np.broadcast_to(np.float32(radius), SIZE))
    sample = sdp.render_layers([layer], sdp.PsfModel(ramp_strength=0.7))
    for view, folder_name in VIEW_FOLDERS.items():
        write_png(folder / folder_name / f'{index:06d}.png', float_to_integer(getattr(sample, view), bits))


def read_views(folder, name: str = '000000.png') -> dict:
    """The four files of one scene of ``folder``, as stored."""
    return {view: read_image(folder / folder_name / name) for view, folder_name in VIEW_FOLDERS.items()}


def test_rerendered_folder_keeps_layout_depth_and_targets_and_blurs_at_the_measured_radius(tmp_path):
    write_capture(tmp_path / 'real', radius=4.0, bits=16)
    used = rerender.rerender_folder(tmp_path / 'real', tmp_path / 'out')
    assert list(used) == ['000000.png'] and abs(used['000000.png'] - 4.0) <= 1.0
    real, out = read_views(tmp_path / 'real'), read_views(tmp_path / 'out')
    assert all(image.dtype == np.uint16 for image in out.values())
    assert np.array_equal(out['target'], real['target'])
    views = {view: to_float(image) for view, image in out.items()}
    assert np.abs(views['left'] - views['target']).mean() > 0.01  # blurred
    shift = horizontal_shift(grey(views['left']), grey(views['right']), 8)
    assert shift > 0.5  # behind the focal plane: the right view's content lies further right


def test_compression_of_views_finer_than_8_bits_is_refused_naming_the_file(tmp_path):
    write_capture(tmp_path / 'real', radius=4.0, bits=16)
    with pytest.raises(ValueError, match=r'inputL/000000\.png: JPEG and H\.264 compression apply to 8-bit views'):
        rerender.rerender_folder(tmp_path / 'real', tmp_path / 'out', rerender.Rerendering(jpeg_quality=50))
    assert not (tmp_path / 'out').exists()


def test_fixed_radius_zero_gives_the_target_itself(tmp_path):
    write_capture(tmp_path / 'real', radius=4.0, bits=16)
    rerender.rerender_folder(tmp_path / 'real', tmp_path / 'out', rerender.Rerendering(radius=0.0))
    out = read_views(tmp_path / 'out')
    assert all(np.array_equal(out[view], out['target']) for view in rerender.INPUT_VIEWS)


def test_radius_map_follows_the_depth_of_each_part_of_the_scene(tmp_path):
    two_depths = np.where(np.arange(SIZE[1]) < SIZE[1] // 2, 2.0, 6.0)[None, :].repeat(SIZE[0], axis=0)
    write_capture(tmp_path / 'real', two_depths, bits=16)
    views = {view: to_float(image) for view, image in read_views(tmp_path / 'real').items()}
    radius_map = rerender.measured_radius_map(views)
    assert radius_map.shape == SIZE
    assert 1.0 <= np.median(radius_map[:, 40:100]) <= 3.0 and 5.0 <= np.median(radius_map[:, 190:250]) <= 7.0
    rerender.rerender_folder(tmp_path / 'real', tmp_path / 'out', rerender.Rerendering(radius_map=True))
    out = {view: to_float(image) for view, image in read_views(tmp_path / 'out').items()}
    error = np.abs(out['left'] - out['target']).mean(axis=(0, 2))
    assert error[190:250].mean() > 1.5 * error[40:100].mean()


@pytest.mark.parametrize('codec', ['jpeg_quality', 'h264_crf', 'h264_video'])
def test_compression_applies_to_8_bit_views_and_costs_consistency(tmp_path, codec):
    if codec.startswith('h264'):
        pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    write_capture(tmp_path / 'real', radius=4.0, bits=8)
    consistency = {}
    for setting in (None, 20 if codec == 'jpeg_quality' else 40):
        out = tmp_path / f'{codec}{setting}'
        if setting is None:
            how = rerender.Rerendering(radius=3.0)
        elif codec == 'h264_video':
            how = rerender.Rerendering(radius=3.0, h264_crf=setting, h264_video=True)
        else:
            how = rerender.Rerendering(radius=3.0, **{codec: setting})
        rerender.rerender_folder(tmp_path / 'real', out, how)
        images = read_views(out)
        assert all(image.dtype == np.uint8 for image in images.values())
        views = {view: to_float(image) for view, image in images.items()}
        error = stats.consistency_error(views['left'], views['right'], views['combined'])
        consistency[setting] = stats.blocks_psnr(error, [(0, 0)], min(SIZE))
    lossless, lossy = consistency.values()
    assert lossless > lossy + 3


def test_script_reports_each_scene_and_refuses_a_bad_quality(tmp_path, capsys):
    write_capture(tmp_path / 'real', radius=4.0, bits=8)
    script = load_script('rerender_targets')
    assert script.main([str(tmp_path / 'real'), '--out', str(tmp_path / 'out'), '--jpeg-quality', '50']) == 0
    assert capsys.readouterr().out.startswith('000000.png: disc radius ')
    assert (tmp_path / 'out' / 'inputC' / '000000.png').is_file()
    for bad, message in (
        (['--jpeg-quality', '0'], "--jpeg-quality: JPEG quality must be a whole number within 1-100, got '0'"),
        (['--psf-softness', '-0.1'], "--psf-softness: must be 0 or more, got '-0.1'"),
        (['--h264-crf', '52'], "--h264-crf: H.264 CRF must be a whole number within 0-51, got '52'"),
        (['--h264-video'], "--h264-video needs --h264-crf (the video's CRF)"),
        (['--radius', '3', '--radius-map'], 'not allowed with argument'),
    ):
        with pytest.raises(SystemExit):
            script.main([str(tmp_path / 'real'), '--out', str(tmp_path / 'out2'), *bad])
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'out2').exists()
