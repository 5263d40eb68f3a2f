"""The generator's realism options: dead-leaves content, the DP PSF's ramp strength, rim and softness, autofocus on
the foreground, and the camera pipeline (linear light, view imbalance, 8-bit quantisation, JPEG), and the
statistics that chose them."""

import json

import cv2
import numpy as np
import pytest

from dmtnet_arch.data import dead_leaves as dl
from dmtnet_arch.data import synthetic_dp as sdp
from dmtnet_arch.tools import dp_statistics as stats

SIZE = (64, 64)


@pytest.fixture(scope='module')
def sources():
    return sdp.collect_sources()


def sample(sources, seed=0, index=0, **options):
    return sdp.generate_sample(seed, index, SIZE, sources, **options)


# ------------------------------------------------------------------------------------------------------ dead leaves


def test_power_law_radii_stay_in_range_and_small_leaves_dominate():
    radii = dl.power_law_radii(20000, 1.0, 50.0, 3.0, np.random.default_rng(0))
    assert radii.min() >= 1.0 and radii.max() <= 50.0
    # density r^-3 on [1, 50]: P(r < 2) = (1 - 1/4) / (1 - 1/2500), about 0.75
    assert abs(np.mean(radii < 2.0) - 0.75) < 0.02


def test_dead_leaves_texture_is_deterministic_in_range_and_varied(sources):
    first = dl.dead_leaves_texture(SIZE, sources, np.random.default_rng(3))
    again = dl.dead_leaves_texture(SIZE, sources, np.random.default_rng(3))
    other = dl.dead_leaves_texture(SIZE, sources, np.random.default_rng(4))
    assert first.shape == (*SIZE, 3) and first.dtype == np.float32
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert first.std() > 0.05  # many leaves, not one flat colour


def test_one_over_f_noise_has_the_asked_spectral_slope():
    field = dl.one_over_f_noise((256, 256), 1.0, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft2(field))
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.rfftfreq(256), indexing='ij'))
    low = spectrum[(frequency > 0.02) & (frequency < 0.04)].mean()
    high = spectrum[(frequency > 0.2) & (frequency < 0.4)].mean()
    assert 6 < low / high < 14  # 1/f: ten times the frequency, a tenth of the amplitude


def test_dead_leaves_probability_chooses_the_content(sources):
    photos = sample(sources, content=sdp.ContentModel(dead_leaves_probability=0.0))
    leaves = sample(sources, content=sdp.ContentModel(dead_leaves_probability=1.0))
    assert not np.array_equal(photos.target, leaves.target)
    again = sample(sources, content=sdp.ContentModel(dead_leaves_probability=1.0))
    assert np.array_equal(leaves.left, again.left)


# ---------------------------------------------------------------------------------------------------------- the PSF


def centroid_x(psf):
    x = np.arange(psf.shape[1]) - psf.shape[1] // 2
    return float((psf.sum(axis=0) * x).sum())


@pytest.mark.parametrize('strength', [1.0, 0.7, 0.4])
def test_ramp_strength_keeps_the_psf_properties_and_scales_the_disparity(strength):
    model = sdp.PsfModel(ramp_strength=strength)
    left, right, combined = sdp.dual_pixel_psfs(6.0, model)
    assert np.isclose(left.sum(), 1.0, atol=1e-5) and np.isclose(right.sum(), 1.0, atol=1e-5)
    assert np.array_equal(right, left[:, ::-1])  # mirror symmetry
    full_left, _, full_combined = sdp.dual_pixel_psfs(6.0, sdp.PsfModel())
    assert np.allclose(combined, full_combined, atol=1e-6)  # the views always sum to the same combined PSF
    assert np.isclose(centroid_x(left) / centroid_x(full_left), strength, rtol=0.03)
    in_front_left, in_front_right, _ = sdp.dual_pixel_psfs(-6.0, model)
    assert np.array_equal(in_front_left, right) and np.array_equal(in_front_right, left)  # sign flip across focus


def radial_profile(psf):
    half = psf.shape[0] // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    rho = np.hypot(x, y)
    return [float(psf[(rho >= r - 0.5) & (rho < r + 0.5)].mean()) for r in range(half + 1)]


@pytest.mark.parametrize('rim_floor, softness', [(1.0, 0.2), (1.4, 0.3), (0.6, 0.0)])
def test_rim_floor_and_softness_keep_the_psf_properties(rim_floor, softness):
    model = sdp.PsfModel(ramp_strength=0.7, rim_floor=rim_floor, sigma_per_radius=softness)
    left, right, combined = sdp.dual_pixel_psfs(6.0, model)
    assert np.isclose(left.sum(), 1.0, atol=1e-5) and np.isclose(combined.sum(), 1.0, atol=1e-5)
    assert np.array_equal(right, left[:, ::-1]) and np.allclose(combined, (left + right) / 2, atol=1e-7)
    in_front_left, in_front_right, _ = sdp.dual_pixel_psfs(-6.0, model)
    assert np.array_equal(in_front_left, right) and np.array_equal(in_front_right, left)
    assert centroid_x(left) < 0 < centroid_x(right)  # behind focus, the left view's PSF leans left


def test_rim_floor_sets_the_centre_brightness_relative_to_the_rim():
    def centre_over_rim(rim_floor):
        disc = sdp.bright_rim_disc(8.0, sdp.PsfModel(rim_floor=rim_floor))
        profile = radial_profile(disc)
        return profile[0] / profile[7]

    # one pixel inside the edge, the Butterworth high-pass has not reached 1 yet
    assert 0.5 < centre_over_rim(0.5) < 0.65  # the bright rim of the earlier default
    assert centre_over_rim(1.0) == pytest.approx(1.0, abs=1e-6)  # flat
    assert 1.25 < centre_over_rim(1.5) < 1.5  # bright centre


def test_psf_softness_spreads_light_beyond_the_disc_edge():
    sharp = sdp.dual_pixel_psfs(6.0, sdp.PsfModel(ramp_strength=0.7, rim_floor=1.0))
    soft = sdp.dual_pixel_psfs(6.0, sdp.PsfModel(ramp_strength=0.7, rim_floor=1.0, sigma_per_radius=0.25))
    assert soft[2].shape[0] > sharp[2].shape[0]  # the grid grows with the softening
    sharp_profile, soft_profile = radial_profile(sharp[2]), radial_profile(soft[2])
    assert soft_profile[8] > 5 * sharp_profile[8]  # light beyond the disc's edge (radius 6.5)
    assert soft_profile[0] < sharp_profile[0]
    assert centroid_x(soft[0]) < centroid_x(sharp[0]) < 0  # the ramp covers the softened edge: a little more shift


def test_psf_variation_lets_a_flat_disc_vary_both_ways():
    model = sdp.PsfModel(rim_floor=1.0, sigma_per_radius=0.2, shape_variation=0.4)
    drawn = [model.varied(np.random.default_rng(seed)) for seed in range(40)]
    floors = [d.rim_floor for d in drawn]
    assert min(floors) < 0.9 and max(floors) > 1.1 and all(0.6 - 1e-9 <= f <= 1.4 + 1e-9 for f in floors)
    assert all(0.2 * 0.6 - 1e-9 <= d.sigma_per_radius <= 0.2 * 1.4 + 1e-9 for d in drawn)


# ------------------------------------------------------------------------------------------------------ the scene


def test_focus_on_foreground_puts_a_foreground_layer_in_focus(sources):
    ranges = sdp.SceneRanges(focus_on_scene_probability=1.0, focus_on_foreground_probability=1.0)
    for seed in range(5):
        layers = sdp.random_scene(np.random.default_rng(seed), SIZE, sources, sdp.CameraModel(), ranges)
        visible = [np.abs(layer.coc)[layer.mask >= 0.5].min() for layer in layers[1:] if (layer.mask >= 0.5).any()]
        assert min(visible) < 1e-3


def visible_coc(layers) -> np.ndarray:
    """The CoC of what each pixel shows (the front-most covering layer)."""
    return sdp.front_most([layer.coc for layer in layers], [layer.mask for layer in layers])


def test_focus_off_the_scene_is_drawn_from_the_random_range_and_leaves_less_in_focus(sources):
    def in_focus_share(ranges, seed):
        layers = sdp.random_scene(np.random.default_rng(seed), SIZE, sources, sdp.CameraModel(f_number=1.4), ranges)
        return np.mean(np.abs(visible_coc(layers)) < 0.5)

    off_scene = sdp.SceneRanges(focus_on_scene_probability=0.0, random_focus_inverse_depth=(0.5, 1.5))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        depths = [np.full(SIZE, 0.3, np.float32), np.full(SIZE, 1.8, np.float32)]
        masks = [np.ones(SIZE, np.float32), np.ones(SIZE, np.float32)]
        assert 0.5 <= sdp.focus_inverse_depth(depths, masks, rng, off_scene) <= 1.5
    on_scene = sdp.SceneRanges(focus_on_scene_probability=1.0, focus_on_foreground_probability=0.8)
    shares = [np.mean([in_focus_share(ranges, seed) for seed in range(12)]) for ranges in (on_scene, off_scene)]
    assert shares[0] > 0.1 and shares[1] < shares[0] / 3
    assert in_focus_share(off_scene, 3) == in_focus_share(off_scene, 3)


def test_focus_on_nearest_leaves_nothing_visible_in_front_of_the_focal_plane(sources):
    nearest = sdp.SceneRanges(focus_on_nearest_probability=1.0)
    depths = [np.full(SIZE, 0.3, np.float32), np.full(SIZE, 1.8, np.float32), np.full(SIZE, 2.5, np.float32)]
    masks = [np.ones(SIZE, np.float32), np.zeros(SIZE, np.float32), np.zeros(SIZE, np.float32)]
    masks[1][:8] = 1.0  # the 2.5-dioptre layer is hidden entirely: the nearest *visible* point is at 1.8
    assert sdp.focus_inverse_depth(depths, masks, np.random.default_rng(0), nearest) == pytest.approx(1.8)
    default_front = []
    for seed in range(8):
        layers = sdp.random_scene(np.random.default_rng(seed), SIZE, sources, sdp.CameraModel(), nearest)
        coc = visible_coc(layers)
        assert coc.min() > -1e-3 and np.abs(coc).min() < 1e-3  # all behind (or at) the focal plane; some in focus
        default = sdp.random_scene(np.random.default_rng(seed), SIZE, sources, sdp.CameraModel())
        default_front.append(np.mean(visible_coc(default) < -0.5))
    assert max(default_front) > 0.05  # the default does put visible content in front of the focal plane
    off = sdp.SceneRanges(focus_on_scene_probability=0.0, random_focus_inverse_depth=(0.5, 1.5))
    drawn = sdp.focus_inverse_depth(depths, masks, np.random.default_rng(5), off)
    reference = np.random.default_rng(5)
    reference.random()  # the focus-on-scene draw; at probability 0 the nearest rule draws nothing before it
    assert drawn == reference.uniform(0.5, 1.5)  # so the default keeps every seed's bytes


# ------------------------------------------------------------------------------------------------- camera pipeline


def test_linear_light_round_trips_and_changes_the_blur(sources):
    pipeline = sdp.CameraPipeline(linear_light=True)
    values = np.linspace(0, 1, 11, dtype=np.float32)
    assert np.allclose(pipeline.to_display(pipeline.to_linear(values)), values, atol=1e-5)
    display = sample(sources)
    linear = sample(sources, pipeline=pipeline)
    # the sharp image goes through and back (only soft mask edges composite differently in linear light)
    assert np.median(np.abs(linear.target - display.target)) < 1e-4
    assert np.abs(linear.left - display.left).max() > 0.01  # blur in linear light brightens highlights


def test_eight_bits_and_jpeg_touch_the_inputs_not_the_target(sources):
    clean = sample(sources)
    eight = sample(sources, pipeline=sdp.CameraPipeline(bits=8))
    for view in (eight.left, eight.right, eight.combined):
        assert np.allclose(view * 255, np.round(view * 255), atol=1e-4)
    assert np.abs(eight.left - clean.left).max() <= 0.5 / 255 + 1e-6
    jpeg = sample(sources, pipeline=sdp.CameraPipeline(bits=8, jpeg_quality=(30, 30)))
    assert np.abs(jpeg.left - clean.left).max() > 2 / 255
    assert np.array_equal(jpeg.target, clean.target) and np.array_equal(eight.target, clean.target)
    assert np.array_equal(jpeg.left, sample(sources, pipeline=sdp.CameraPipeline(bits=8, jpeg_quality=(30, 30))).left)


def test_h264_touches_the_inputs_not_the_target_deterministically_and_loses_more_at_a_higher_crf(sources):
    pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    clean = sample(sources)
    light, heavy = (sample(sources, pipeline=sdp.CameraPipeline(bits=8, h264_crf=(crf, crf))) for crf in (10, 40))
    assert np.array_equal(heavy.target, clean.target)
    assert np.allclose(heavy.left * 255, np.round(heavy.left * 255), atol=1e-4)
    error = {name: np.abs(views.left - clean.left).mean() for name, views in (('light', light), ('heavy', heavy))}
    assert 0 < error['light'] < error['heavy']
    again = sample(sources, pipeline=sdp.CameraPipeline(bits=8, h264_crf=(40, 40)))
    assert np.array_equal(heavy.left, again.left) and np.array_equal(heavy.combined, again.combined)


def test_h264_frame_keeps_an_odd_size():
    pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    y, x = np.mgrid[:17, :23]
    grey = 40 + 6 * x + 2 * y  # at most 204
    grey[:, 7] = 250  # a bright line, to see that the crop keeps the frame in place
    codes = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    decoded = sdp.h264_frame(codes, 0)
    assert decoded.shape == codes.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - codes).mean() < 3  # CRF 0 is lossless in YUV; grey survives 4:2:0
    assert np.all(decoded[..., 0].argmax(axis=1) == 7)


def test_h264_video_codes_left_and_right_together_and_leaves_the_combined_view_a_still_frame(sources):
    pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    clean = sample(sources)
    stills = sample(sources, pipeline=sdp.CameraPipeline(bits=8, h264_crf=(30, 30)))
    video = sample(sources, pipeline=sdp.CameraPipeline(bits=8, h264_crf=(30, 30), h264_video=True))
    assert np.array_equal(video.combined, stills.combined) and np.array_equal(video.target, clean.target)
    assert not np.array_equal(video.left, stills.left) and not np.array_equal(video.right, stills.right)
    for view in (video.left, video.right):
        assert np.allclose(view * 255, np.round(view * 255), atol=1e-4)
    assert 0 < np.abs(video.left - clean.left).mean() < 0.05
    again = sample(sources, pipeline=sdp.CameraPipeline(bits=8, h264_crf=(30, 30), h264_video=True))
    assert np.array_equal(video.left, again.left) and np.array_equal(video.right, again.right)


def test_h264_alternating_views_predict_each_view_from_the_other():
    """Views that differ by a small shift: at a high CRF the codec keeps little of what separates them."""
    pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    texture = sdp.random_texture(sdp.collect_sources(), (64, 96), np.random.default_rng(3))
    left, right = texture[:, :-2], texture[:, 2:]
    difference = {}
    for crf in (10, 45):
        coded_left, coded_right = sdp.h264_alternating_views(left, right, crf)
        assert coded_left.shape == left.shape and coded_right.shape == right.shape
        difference[crf] = np.abs(coded_left - coded_right).mean()
    assert difference[45] < 0.8 * difference[10]
    assert abs(difference[10] - np.abs(left - right).mean()) < 0.2 * difference[10]


def test_h264_video_keeps_frame_count_order_and_an_odd_size():
    pytest.importorskip('av', reason="PyAV: the plugin's [video] extra")
    frames = np.stack([np.full((17, 23, 3), level, np.uint8) for level in (40, 200, 120)])
    decoded = sdp.h264_video(frames, 0)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).max() <= 2


def test_h264_video_needs_a_crf():
    with pytest.raises(ValueError, match='h264_video codes the views as a video and needs h264_crf'):
        sdp.CameraPipeline(bits=8, h264_video=True)
    views = [np.zeros((8, 8, 3), np.float32)] * 3
    with pytest.raises(ValueError, match='needs h264_crf'):
        sdp.store_views(*views, 8, h264_video=True)


def test_one_codec_per_pipeline():
    with pytest.raises(ValueError, match='jpeg_quality and h264_crf'):
        sdp.CameraPipeline(bits=8, jpeg_quality=(50, 50), h264_crf=(30, 30))


def test_view_gain_gradient_brightens_the_views_towards_opposite_sides():
    flat = np.full((32, 64, 3), 0.5, np.float32)
    rendered = sdp.RenderedSample(flat, flat.copy(), flat.copy(), flat.copy(), np.zeros((32, 64), np.float32))
    tilted = sdp.imbalance_views(rendered, 0.1)
    ratio = tilted.left.mean(axis=(0, 2)) / tilted.right.mean(axis=(0, 2))
    assert ratio[0] < 0.96 and ratio[-1] > 1.04 and np.all(np.diff(ratio) > 0)
    assert np.allclose(tilted.combined, (tilted.left + tilted.right) / 2)


def test_default_options_leave_earlier_samples_unchanged(sources):
    """The new options are off by default, so a seed gives the same sample with or without them spelt out."""
    default = sample(sources, seed=7)
    spelt = sample(sources, seed=7, content=sdp.ContentModel(), pipeline=sdp.CameraPipeline(), scene=sdp.SceneRanges())
    assert np.array_equal(default.left, spelt.left) and np.array_equal(default.right, spelt.right)


def test_settings_file_records_the_realism_options(tmp_path):
    sdp.generate_dataset(
        tmp_path,
        count=1,
        size=32,
        content=sdp.ContentModel(dead_leaves_probability=0.5),
        pipeline=sdp.CameraPipeline(linear_light=True, bits=8, jpeg_quality=(60, 95)),
        psf_model=sdp.PsfModel(ramp_strength=0.7, rim_floor=1.0, sigma_per_radius=0.2),
        progress=False,
    )
    settings = json.loads((tmp_path / 'synthetic_dp.json').read_text())
    assert settings['content']['dead_leaves_probability'] == 0.5
    assert settings['pipeline'] == {
        'linear_light': True,
        'gamma': 2.2,
        'view_gain_gradient': 0.0,
        'bits': 8,
        'jpeg_quality': [60, 95],
        'h264_crf': None,
        'h264_video': False,
    }
    assert settings['psf']['ramp_strength'] == 0.7
    assert settings['psf']['rim_floor'] == 1.0 and settings['psf']['sigma_per_radius'] == 0.2


# ------------------------------------------------------------------------------------------ measuring real captures


def test_disc_radius_of_a_known_blur_is_found():
    rng = np.random.default_rng(1)
    target = rng.random((96, 96))
    combined = stats.disc_blurs(target)[stats.DISC_RADII.index(4.0)]
    radius, error = stats.best_disc_radius(stats.disc_blurs(target), combined, (24, 24, 48))
    assert radius == 4.0 and error < 1e-6


def test_shift_against_blur_fits_the_slope_through_the_origin():
    blocks = [stats.BlockMeasurement('a', 0, 0, 0.4 * r * (-1) ** i, r, 0.0) for i, r in enumerate([2.0, 4.0, 8.0])]
    result = stats.shift_against_blur(blocks)
    assert result['slope'] == pytest.approx(0.4) and result['blocks'] == 3
    assert result['by_radius'][8.0] == (pytest.approx(3.2), 1)


def test_radius_shares_spread_the_blocks_over_the_bins():
    blocks = [stats.BlockMeasurement('a', 0, 0, 0.0, r, 0.0) for r in (0.0, 0.5, 2.0, 4.0, 4.5, 7.0, 10.0, 15.0)]
    shares = stats.radius_shares(blocks)
    assert list(shares.values()) == [0.25, 0.125, 0.25, 0.125, 0.25]
    assert stats.share_text(*list(shares)[-1], shares[10.0, np.inf]) == '>= 10 px 25 %'
    assert stats.share_text(3.0, 6.0, 0.25) == '3-6 px 25 %'


def test_focal_side_shares_count_blurred_blocks_by_the_sign_of_their_shift():
    shifts_and_radii = [(1.5, 4.0), (2.0, 6.0), (-1.0, 3.0), (0.1, 2.0), (-3.0, 0.5)]  # the last is not blurred
    blocks = [stats.BlockMeasurement('a', 0, 0, shift, radius, 0.0) for shift, radius in shifts_and_radii]
    assert stats.blurred_side_shares(blocks) == {'behind': 0.5, 'in front': 0.25, 'undecided': 0.25}
    lines = stats.report_lines(blocks, {'a': np.ones(3)})
    assert 'per side of the focal plane: behind 50 %, in front 25 %, undecided 25 %' in lines[3]


def test_psf_variation_draws_a_shape_per_sample_within_its_range(sources):
    model = sdp.PsfModel(ramp_strength=0.7, shape_variation=0.4)
    drawn = [model.varied(np.random.default_rng(seed)) for seed in range(20)]
    assert all(0.7 * 0.6 - 1e-9 <= d.ramp_strength <= 0.7 * 1.4 + 1e-9 for d in drawn)
    assert all(0.5 * 0.6 - 1e-9 <= d.rim_floor <= 0.5 * 1.4 + 1e-9 and d.shape_variation == 0 for d in drawn)
    assert len({d.ramp_strength for d in drawn}) > 3  # it varies
    assert drawn[0] == model.varied(np.random.default_rng(0))  # and is deterministic for a seed
    varied = sample(sources, seed=3, psf_model=model)
    assert np.array_equal(varied.left, sample(sources, seed=3, psf_model=model).left)
    assert not np.array_equal(varied.left, sample(sources, seed=3, psf_model=sdp.PsfModel(ramp_strength=0.7)).left)


def test_kernels_measured_from_a_known_blur_recover_the_psf_and_its_shape():
    truth = sdp.PsfModel(ramp_strength=0.7, rim_floor=1.0, sigma_per_radius=0.2)
    rng = np.random.default_rng(0)
    target = cv2.GaussianBlur(rng.random((160, 160)), (0, 0), 1.0)
    left_psf, right_psf, _ = sdp.dual_pixel_psfs(5.0, truth)
    views = {'target': target, 'left': sdp.convolve(target[..., None], left_psf)[..., 0]}
    views['right'] = sdp.convolve(target[..., None], right_psf)[..., 0]
    sums = stats.KernelSums()
    for top in (16, 64, 96):
        for x0 in (16, 64, 96):
            stats.add_block(sums, views, top, x0, 48)
    assert sums.blocks == 9
    stats.add_block(sums, views, 0, 0, 48)  # too close to the border: skipped
    assert sums.blocks == 9
    kernels = stats.solve_kernels(sums, smoothness=1e-6)
    assert np.abs(kernels['left'] - stats.centred(left_psf, 29)).max() < 0.1 * left_psf.max()
    grid = {'rim_floor': (0.5, 1.0), 'sigma_per_radius': (0.05, 0.2), 'ramp_strength': (0.5, 0.7)}
    ranked = stats.fit_psf_shape([kernels], grid)
    error, best = ranked[0]
    assert (best.rim_floor, best.sigma_per_radius, best.ramp_strength) == (1.0, 0.2, 0.7) and error < 0.01
    assert stats.shape_error(kernels, truth, stats.FIT_RADII)[1] == 5.0  # the radius is found too
