"""scripts/measure_dp_statistics.py on a folder rendered with a known PSF: the shift, the PSF shape it fits, and the
JPEG quality it estimates for compressed views."""

import numpy as np

from dmtnet_arch.data import synthetic_dp as sdp
from tests.helpers import load_script

KNOWN_SHAPE = sdp.PsfModel(ramp_strength=0.7, rim_floor=1.0, sigma_per_radius=0.2)


def render_known_blur(out, radius: float, scenes: int = 2, pipeline: sdp.CameraPipeline | None = None) -> None:
    """Photographs at one depth behind the focal plane, blurred with :data:`KNOWN_SHAPE`, then through
    ``pipeline`` (quantisation and JPEG of the input views) when given."""
    sources = sdp.collect_sources()
    for index in range(scenes):
        rng = np.random.default_rng(index)
        texture = sdp.random_texture(sources, (240, 336), rng)
        layer = sdp.Layer(texture, np.ones((240, 336), np.float32), np.full((240, 336), radius, np.float32))
        sample = sdp.render_layers([layer], KNOWN_SHAPE)
        if pipeline is not None:
            sample = sdp.through_camera(sample, pipeline, rng)
        sdp.write_sample(out, f'{index:06d}', sample)


def estimated_qualities(folder, capsys) -> list:
    """The per-scene JPEG qualities ``--compression`` prints for ``folder``."""
    assert load_script('measure_dp_statistics').main([str(folder), '--compression']) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('scene | PSNR of the mean of the views'))
    assert lines[-1].startswith('median equivalent JPEG quality over 2 scenes')
    return [float(line.split('|')[2]) for line in lines[header + 1 : -1]]


def test_compression_estimate_finds_the_jpeg_quality_the_views_were_stored_at(tmp_path, capsys):
    for quality in (30, 80):
        pipeline = sdp.CameraPipeline(bits=8, jpeg_quality=(quality, quality))
        render_known_blur(tmp_path / f'q{quality}', radius=4.0, pipeline=pipeline)
    low, high = estimated_qualities(tmp_path / 'q30', capsys), estimated_qualities(tmp_path / 'q80', capsys)
    assert all(abs(q - 30) <= 8 for q in low), low
    assert all(abs(q - 80) <= 8 for q in high), high


def test_compression_estimate_is_not_made_for_values_finer_than_8_bits(tmp_path, capsys):
    render_known_blur(tmp_path, radius=4.0, scenes=1)
    assert load_script('measure_dp_statistics').main([str(tmp_path), '--compression']) == 0
    out = capsys.readouterr().out
    assert '000000.png | ' in out and '- (not 8-bit values)' in out
    assert 'median equivalent' not in out


def test_script_reports_the_shift_sign_and_recovers_the_rendered_psf_shape(tmp_path, capsys):
    render_known_blur(tmp_path, radius=4.0)
    assert load_script('measure_dp_statistics').main([str(tmp_path), '--psf-shape']) == 0
    lines = capsys.readouterr().out.splitlines()
    signed_shift = float(lines[0].split('mean signed shift of blurred blocks ')[1].split(' px')[0])
    assert signed_shift > 1.0  # behind the focal plane: the right view's content lies further right
    assert lines[-1].endswith('(reference)')
    header = next(i for i, line in enumerate(lines) if line.startswith('relative error |'))
    best = [float(value) for value in lines[header + 1].split('|')]
    assert best[1:] == [1.0, 0.2, 0.7], lines[header:]
    assert best[0] < float(lines[-1].split('|')[0])  # the rendered shape fits better than the bright-rim reference
