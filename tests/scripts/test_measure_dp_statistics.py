"""scripts/measure_dp_statistics.py on a folder rendered with a known PSF: the shift, and the PSF shape it fits."""

import numpy as np

from dmtnet_arch.data import synthetic_dp as sdp
from tests.helpers import load_script

KNOWN_SHAPE = sdp.PsfModel(ramp_strength=0.7, rim_floor=1.0, sigma_per_radius=0.2)


def render_known_blur(out, radius: float, scenes: int = 2) -> None:
    """Photographs at one depth behind the focal plane, blurred with :data:`KNOWN_SHAPE`."""
    sources = sdp.collect_sources()
    for index in range(scenes):
        texture = sdp.random_texture(sources, (240, 336), np.random.default_rng(index))
        layer = sdp.Layer(texture, np.ones((240, 336), np.float32), np.full((240, 336), radius, np.float32))
        sdp.write_sample(out, f'{index:06d}', sdp.render_layers([layer], KNOWN_SHAPE))


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
