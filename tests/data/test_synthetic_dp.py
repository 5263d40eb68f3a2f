"""The synthetic dual-pixel generator: thin-lens CoC, DP PSFs, layered rendering, files and determinism."""

import json

import cv2
import lmdb
import numpy as np
import pytest

import dmtnet_arch  # noqa: F401
from dmtnet_arch.data import synthetic_dp as sdp
from dmtnet_arch.data.synthetic_dp import generate_dataset
from dmtnet_arch.utils.file_util import TEMP_SUFFIX
from tests.helpers import load_script

ONE_COUNT = 1.0 / 65535


@pytest.fixture(scope='module')
def sources():
    return sdp.collect_sources()


def texture(sources, size, seed):
    return sdp.random_texture(sources, size, np.random.default_rng(seed))


def constant_layer(texture_rgb, coc_radius, mask=None):
    height, width = texture_rgb.shape[:2]
    mask = np.ones((height, width), np.float32) if mask is None else mask
    return sdp.Layer(texture_rgb, mask, np.full((height, width), coc_radius, np.float32))


def disc_mask(size, centre, radius):
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    return (np.hypot(x - centre[1], y - centre[0]) <= radius).astype(np.float32)


def read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


# ------------------------------------------------------------------------------------------------------- optics


def test_thin_lens_coc_is_signed_and_matches_the_formula():
    camera = sdp.CameraModel(focal_length_mm=50.0, f_number=2.0, pixel_pitch_mm=0.1)
    # c = (f / N) * f * (d - d_f) / (d * (d_f - f)), radius in px = c / 2 / pitch; d_f = 1 m.
    behind = 25.0 * 50.0 * 1000.0 / (2000.0 * 950.0) / 2.0 / 0.1
    front = 25.0 * 50.0 * -500.0 / (500.0 * 950.0) / 2.0 / 0.1
    coc = camera.coc_radius_px(np.array([1 / 2.0, 1 / 1.0, 1 / 0.5]), focus_distance_m=1.0)
    np.testing.assert_allclose(coc, [behind, 0.0, front], rtol=1e-5, atol=1e-6)
    assert coc[0] > 0 > coc[2]


@pytest.mark.parametrize('radius', [0.5, 1.7, 4.0, 9.5])
def test_psfs_sum_to_one_mirror_each_other_and_swap_across_focus(radius):
    left, right, combined = sdp.dual_pixel_psfs(radius)
    for psf in (left, right, combined):
        assert psf.sum() == pytest.approx(1.0, abs=1e-5)
        assert psf.min() >= 0
    np.testing.assert_array_equal(right, left[:, ::-1])
    np.testing.assert_allclose(combined, (left + right) / 2, atol=1e-7)
    front_left, front_right, front_combined = sdp.dual_pixel_psfs(-radius)
    np.testing.assert_array_equal(front_left, right)
    np.testing.assert_array_equal(front_right, left)
    np.testing.assert_allclose(front_combined, combined, atol=1e-7)
    x = np.arange(left.shape[1]) - left.shape[1] // 2
    assert (left.sum(axis=0) * x).sum() < -0.2 * min(radius, 1.0)  # behind focus the left view leans left


def test_combined_psf_is_a_disc_with_a_bright_rim():
    radius = 9.0
    _, _, combined = sdp.dual_pixel_psfs(radius)
    middle_row = combined[combined.shape[0] // 2]
    centre = combined.shape[1] // 2
    rim_value = middle_row[centre + int(radius) - 1]
    assert rim_value > 1.3 * middle_row[centre]
    assert middle_row[centre + int(radius) + 4] < 0.05 * rim_value
    np.testing.assert_allclose(combined, combined.T, atol=1e-6)


def test_in_focus_psfs_are_a_delta():
    for radius in (0.0, 0.3, -0.49):
        for psf in sdp.dual_pixel_psfs(radius):
            np.testing.assert_array_equal(psf, np.ones((1, 1)))


# ---------------------------------------------------------------------------------------------------- rendering


def test_scene_entirely_in_focus_renders_identical_views_and_target(sources):
    size = (48, 64)
    background = constant_layer(texture(sources, size, 1), 0.2)
    foreground = constant_layer(texture(sources, size, 2), -0.3, disc_mask(size, (20, 30), 12))
    sample = sdp.render_layers([background, foreground])
    np.testing.assert_array_equal(sample.left, sample.target)
    np.testing.assert_array_equal(sample.right, sample.target)
    np.testing.assert_array_equal(sample.combined, sample.target)
    assert np.abs(sample.target - background.texture).max() > 0.05  # the foreground is really there


def test_in_focus_background_stays_sharp_away_from_a_blurred_object(sources):
    size = (64, 64)
    object_mask = disc_mask(size, (32, 32), 10)
    layers = [
        constant_layer(texture(sources, size, 3), 0.0),
        constant_layer(texture(sources, size, 4), 5.0, object_mask),
    ]
    sample = sdp.render_layers(layers)
    reach = sdp.psf_half_width(5.0, sdp.PsfModel()) + 1
    far = cv2.erode(1 - object_mask, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    assert far.sum() > 500
    for view in (sample.left, sample.right):
        np.testing.assert_allclose(view[far], sample.target[far], atol=1e-5)
    on_object = object_mask.astype(bool)
    assert np.abs(sample.left - sample.right)[on_object].mean() > 0.005
    assert np.abs(sample.left - sample.target)[on_object].mean() > 0.01


def test_combined_view_is_the_mean_of_the_views_and_the_combined_psf_blur(sources):
    image = texture(sources, (64, 64), 5)
    sample = sdp.render_layers([constant_layer(image, 4.0)])
    np.testing.assert_allclose(sample.combined, (sample.left + sample.right) / 2, atol=1e-7)
    _, _, combined_psf = sdp.dual_pixel_psfs(4.0)
    expected = sdp.convolve(image.astype(np.float32), combined_psf)
    np.testing.assert_allclose(sample.combined, expected, atol=1e-5)
    assert np.abs(sample.combined - image).mean() > 0.01


def test_flat_coloured_slanted_plane_renders_without_seams_between_coc_bins():
    size = (40, 96)
    colour = np.array([0.2, 0.5, 0.8], np.float32)
    flat = np.broadcast_to(colour, (*size, 3)).copy()
    coc = np.broadcast_to(np.linspace(-6.0, 6.0, size[1], dtype=np.float32), size).copy()
    sample = sdp.render_layers([sdp.Layer(flat, np.ones(size, np.float32), coc)])
    assert len(np.unique(sample.defocus)) > 20  # many bins, hence many seams
    for view in (sample.left, sample.right):
        np.testing.assert_allclose(view, flat, atol=1e-4)


def horizontal_shift(first, second):
    grey = [cv2.cvtColor(view, cv2.COLOR_RGB2GRAY) for view in (first, second)]
    window = cv2.createHanningWindow(grey[0].shape[::-1], cv2.CV_32F)
    (shift_x, _), _ = cv2.phaseCorrelate(grey[0], grey[1], window)
    return shift_x


@pytest.mark.parametrize('seed', [1, 2])
def test_disparity_between_views_changes_sign_across_the_focal_plane(sources, seed):
    size = (96, 96)
    image = texture(sources, size, seed)
    camera = sdp.CameraModel()
    shifts = {}
    for name, depth_m in (('front', 0.8), ('behind', 2.5)):
        coc = camera.coc_radius_px(np.full(size, 1 / depth_m), focus_distance_m=1.2)
        sample = sdp.render_layers([sdp.Layer(image, np.ones(size, np.float32), coc)])
        shifts[name] = horizontal_shift(sample.left, sample.right)
    assert shifts['behind'] > 0.5  # right view displaced to the right of the left view
    assert shifts['front'] < -0.5


def test_generated_in_focus_pixels_match_target_away_from_other_depths(sources):
    checked = 0
    for index in range(6):
        sample = sdp.generate_sample(7, index, 64, sources)
        reach = sdp.psf_half_width(float(np.abs(sample.defocus).max()), sdp.PsfModel()) + 2
        in_focus = (np.abs(sample.defocus) < 0.5).astype(np.uint8)
        interior = cv2.erode(in_focus, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8), borderValue=1).astype(bool)
        for view in (sample.left, sample.right):
            np.testing.assert_allclose(view[interior], sample.target[interior], atol=1e-5)
        checked += interior.sum()
        defocused = np.abs(sample.defocus) >= 2
        if defocused.any():
            assert np.abs(sample.left - sample.right)[defocused].mean() > 1e-3
    assert checked > 1000


def test_sensor_noise_is_poisson_gaussian_and_keeps_the_combined_mean(sources):
    noise = sdp.NoiseModel.from_std(0.03)
    clean = sdp.generate_sample(4, 0, 64, sources)
    noisy = sdp.generate_sample(4, 0, 64, sources, noise=noise)
    np.testing.assert_array_equal(noisy.target, clean.target)
    np.testing.assert_allclose(noisy.combined, (noisy.left + noisy.right) / 2, atol=1e-7)
    unclipped = (clean.left > 0.15) & (clean.left < 0.85)
    expected_std = np.sqrt(noise.shot_gain * clean.left + noise.read_std**2)
    normalised = (noisy.left - clean.left)[unclipped] / expected_std[unclipped]
    assert normalised.std() == pytest.approx(1.0, abs=0.1)
    assert abs(normalised.mean()) < 0.05
    assert not sdp.NoiseModel().enabled


# -------------------------------------------------------------------------------------------------------- files


def folder_bytes(root):
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob('*')) if path.is_file()}


def test_same_seed_writes_same_bytes_and_another_seed_differs(tmp_path):
    first = folder_bytes(sdp.generate_dataset(tmp_path / 'a', 2, (40, 56), seed=3, progress=False))
    again = folder_bytes(sdp.generate_dataset(tmp_path / 'b', 2, (40, 56), seed=3, progress=False))
    other = folder_bytes(sdp.generate_dataset(tmp_path / 'c', 2, (40, 56), seed=4, progress=False))
    assert len(first) == 2 * 5 + 1
    assert first == again
    for name in ('target/000000.png', 'inputL/000001.png', 'defocus/000000.npy'):
        assert first[name] != other[name]


def test_written_files_are_16_bit_bgr_and_match_the_sample(tmp_path, sources):
    out = sdp.generate_dataset(tmp_path, 1, (40, 56), seed=5, progress=False)
    sample = sdp.generate_sample(5, 0, (40, 56), sources)
    views = {}
    for attribute, folder in sdp.VIEW_FOLDERS.items():
        image = read_png(out / folder / '000000.png')
        assert image.dtype == np.uint16 and image.shape == (40, 56, 3)
        assert np.any(image % 257 != 0)  # finer than 8-bit levels
        views[attribute] = image.astype(np.int64)
        rgb = image[..., ::-1] / 65535
        np.testing.assert_allclose(rgb, getattr(sample, attribute), atol=0.51 * ONE_COUNT + 1e-7)
    mean_of_views = (views['left'] + views['right']) / 2
    assert np.abs(views['combined'] - mean_of_views).max() <= 1.0
    defocus = np.load(out / sdp.DEFOCUS_FOLDER / '000000.npy')
    assert defocus.dtype == np.float32
    np.testing.assert_array_equal(defocus, sample.defocus)


def test_rerun_with_fewer_samples_removes_stale_ones(tmp_path):
    sdp.generate_dataset(tmp_path, 3, 24, progress=False)
    sdp.generate_dataset(tmp_path, 2, 24, progress=False)
    for folder in sdp.VIEW_FOLDERS.values():
        assert sorted(path.name for path in (tmp_path / folder).iterdir()) == ['000000.png', '000001.png']
    assert not list(tmp_path.rglob(f'*{TEMP_SUFFIX}'))


def test_lmdb_holds_the_same_16_bit_images(tmp_path):
    out = sdp.generate_dataset(tmp_path, 2, 32, seed=1, write_lmdb=True, progress=False)
    for view, folder in sdp.VIEW_FOLDERS.items():
        lmdb_name = f'{sdp.LMDB_NAMES[view]}.lmdb'
        meta = (out / lmdb_name / 'meta_info.txt').read_text().split('\n')
        assert meta[:2] == ['000000.png (32,32,3) 1', '000001.png (32,32,3) 1']
        env = lmdb.open(str(out / lmdb_name), readonly=True, lock=False)
        with env.begin() as txn:
            encoded = txn.get(b'000001')
        env.close()
        decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded.dtype == np.uint16
        np.testing.assert_array_equal(decoded, read_png(out / folder / '000001.png'))
    assert not list(out.glob('*.partial.lmdb'))


def test_command_line_writes_the_requested_size(tmp_path):
    cli = load_script('make_synthetic_dp')
    assert cli.parse_size('128') == (128, 128)
    assert cli.parse_size('24x40') == (24, 40)
    cli.main(['--count', '1', '--size', '24x40', '--seed', '2', '--out', str(tmp_path), '--quiet'])
    assert read_png(tmp_path / 'inputR' / '000000.png').shape == (24, 40, 3)
    assert np.load(tmp_path / 'defocus' / '000000.npy').shape == (24, 40)


def test_command_line_passes_the_psf_shape_and_refuses_a_negative_one(tmp_path, capsys):
    cli = load_script('make_synthetic_dp')
    shape = ['--rim-floor', '1.2', '--psf-softness', '0.25', '--ramp-strength', '0.7']
    cli.main(['--count', '1', '--size', '24', '--out', str(tmp_path), '--quiet', *shape])
    psf = json.loads((tmp_path / 'synthetic_dp.json').read_text())['psf']
    assert (psf['rim_floor'], psf['sigma_per_radius'], psf['ramp_strength']) == (1.2, 0.25, 0.7)
    with pytest.raises(SystemExit):
        cli.main(['--count', '1', '--out', str(tmp_path / 'bad'), '--psf-softness', '-0.1'])
    assert "--psf-softness: must be 0 or more, got '-0.1'" in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()


def test_command_line_passes_the_focus_choice_and_refuses_a_reversed_range(tmp_path, capsys):
    cli = load_script('make_synthetic_dp')
    focus = ['--focus-on-scene', '0', '--random-focus', '0.5-1.5', '--focus-on-nearest', '0.9']
    cli.main(['--count', '1', '--size', '24', '--out', str(tmp_path), '--quiet', *focus])
    scene = json.loads((tmp_path / 'synthetic_dp.json').read_text())['scene']
    assert (scene['focus_on_scene_probability'], scene['random_focus_inverse_depth']) == (0.0, [0.5, 1.5])
    assert scene['focus_on_nearest_probability'] == 0.9
    for bad in ('1.5-0.5', '0.5', 'near-far', '0-0', '0.5-inf'):  # a focus at 0 dioptres would be at infinity
        with pytest.raises(SystemExit):
            cli.main(['--count', '1', '--out', str(tmp_path / 'bad'), '--random-focus', bad])
        assert (
            f"--random-focus must be LOW-HIGH, finite numbers with 0 < LOW <= HIGH, got '{bad}'"
            in capsys.readouterr().err
        )
    assert not (tmp_path / 'bad').exists()


def test_command_line_takes_one_codec_and_checks_its_range(tmp_path, capsys):
    cli = load_script('make_synthetic_dp')
    for bad, message in (
        (['--h264-crf', '52'], "H.264 CRF must be N or LOW-HIGH within 0-51, got '52'"),
        (['--h264-crf', '40-30'], "H.264 CRF range must be LOW-HIGH, got '40-30'"),
        (['--jpeg-quality', '0'], "JPEG quality must be N or LOW-HIGH within 1-100, got '0'"),
        (['--jpeg-quality', '50', '--h264-crf', '30'], 'not allowed with argument'),
        (['--h264-video'], "--h264-video needs --h264-crf (the video's CRF)"),
        (['--jpeg-quality', '50', '--h264-video'], '--h264-video needs --h264-crf'),
    ):
        with pytest.raises(SystemExit):
            cli.main(['--count', '1', '--out', str(tmp_path / 'bad'), *bad])
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()


def test_unreadable_source_image_is_named(tmp_path):
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r'broken\.png: cannot be read'):
        sdp.load_source_folder(tmp_path)


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
