"""The DPDD metrics (dmtnet_arch/metrics/dual_pixel_metric.py): values, protocols, inputs, BasicSR registration."""

import math
import re

import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY
from skimage.metrics import structural_similarity

import dmtnet_arch  # noqa: F401  (registers the metrics)
from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_mae, calculate_dp_psnr, calculate_dp_ssim

H, W = 24, 20


def random_image(seed: int, low: float = 0.0, high: float = 1.0, levels: int | None = 65535) -> np.ndarray:
    """(H, W, 3) float64 image in [low, high], on the 16-bit grid unless ``levels`` is None."""
    img = np.random.default_rng(seed).uniform(low, high, (H, W, 3))
    return img if levels is None else np.round(img * levels) / levels


def test_psnr_of_a_known_mse():
    gt = random_image(0, 0.1, 0.9, levels=None)
    out = gt + 0.01  # MSE 1e-4 -> 40 dB
    assert calculate_dp_psnr(out, gt, protocol='float') == pytest.approx(40.0, abs=1e-9)
    # quantising both to 16 bits moves the error by at most one level
    assert calculate_dp_psnr(out, gt) == pytest.approx(40.0, abs=0.01)
    assert calculate_dp_psnr(gt + 0.1, gt, protocol='float') == pytest.approx(20.0, abs=1e-9)


def test_psnr_of_identical_images_is_infinite():
    gt = random_image(1)
    assert calculate_dp_psnr(gt, gt.copy()) == math.inf


def test_mae():
    gt, out = random_image(2, levels=None), random_image(3, levels=None)
    assert calculate_dp_mae(out, gt, protocol='float') == pytest.approx(np.mean(np.abs(out - gt)), rel=1e-12)
    inside = random_image(2, 0.1, 0.9, levels=None)
    assert calculate_dp_mae(inside + 0.02, inside, protocol='float') == pytest.approx(0.02, abs=1e-12)


def test_ssim_equals_scikit_image():
    gt = random_image(4)
    out = np.clip(gt + np.random.default_rng(5).normal(0, 0.05, gt.shape), 0, 1)
    out = np.round(out * 65535) / 65535  # already on the 16-bit grid: quantising changes nothing
    expected = structural_similarity(out, gt, data_range=1.0, channel_axis=-1)
    assert 0.0 < expected < 0.99
    assert calculate_dp_ssim(out, gt) == pytest.approx(expected, abs=1e-12)
    assert calculate_dp_ssim(gt, gt.copy()) == pytest.approx(1.0, abs=1e-12)


def test_16bit_and_8bit_protocols_quantise_differently():
    gt = np.full((H, W, 3), 0.5)
    out = np.full((H, W, 3), 0.5004)
    # 16 bits: 0.5004 -> level 32794, 0.5 -> level 32768 (round half to even); 8 bits: both -> level 128
    expected_16 = 10 * math.log10(1 / ((32794 - 32768) / 65535) ** 2)
    assert calculate_dp_psnr(out, gt, protocol='16bit') == pytest.approx(expected_16, abs=1e-9)
    assert calculate_dp_psnr(out, gt) == pytest.approx(expected_16, abs=1e-9)  # 16bit is the default
    assert calculate_dp_psnr(out, gt, protocol='8bit') == math.inf
    assert calculate_dp_mae(out, gt, protocol='8bit') == 0.0
    assert calculate_dp_mae(out, gt, protocol='16bit') == pytest.approx(26 / 65535, abs=1e-15)
    # the 8-bit grid is coarser: one 8-bit step apart gives a finite PSNR there
    gt8 = np.full((H, W, 3), 100 / 255)
    assert calculate_dp_psnr(gt8 + 1 / 255, gt8, protocol='8bit') == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_outputs_outside_0_1_are_clamped():
    gt = random_image(6)
    gt[:4] = 0.0
    gt[-4:] = 1.0
    out = gt.copy()
    out[:4] = -0.04  # below black (further out is refused: test_metrics_refuse_float_images_outside_zero_one below)
    out[-4:] = 1.04  # above white
    assert calculate_dp_mae(out, gt) == 0.0
    assert calculate_dp_psnr(out, gt) == math.inf
    assert calculate_dp_ssim(out, gt) == pytest.approx(1.0, abs=1e-12)
    # only the part outside [0, 1] is cut: a pixel at 1.04 against a target at 0.8 is an error of 0.2
    gt_mid = np.full((H, W, 3), 0.8)
    assert calculate_dp_mae(np.full((H, W, 3), 1.04), gt_mid, protocol='float') == pytest.approx(0.2, abs=1e-12)


@pytest.mark.parametrize('batched', [False, True], ids=['CHW', '1CHW'])
def test_accepts_torch_tensors(batched):
    gt_np, out_np = random_image(7), random_image(8)

    def to_tensor(img):
        tensor = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()
        return tensor[None] if batched else tensor

    out, gt = to_tensor(out_np), to_tensor(gt_np)
    assert out.shape == ((1, 3, H, W) if batched else (3, H, W))
    # float32 -> 16-bit levels survives exactly, so the tensor path equals the array path
    assert calculate_dp_psnr(out, gt) == pytest.approx(calculate_dp_psnr(out_np, gt_np), abs=1e-9)
    assert calculate_dp_ssim(out, gt) == pytest.approx(calculate_dp_ssim(out_np, gt_np), abs=1e-9)
    assert calculate_dp_mae(out, gt) == pytest.approx(calculate_dp_mae(out_np, gt_np), abs=1e-12)
    # a tensor and an array can be mixed
    assert calculate_dp_mae(out, gt_np) == pytest.approx(calculate_dp_mae(out_np, gt_np), abs=1e-12)


def test_tensor_batches_and_shape_mismatches_are_refused():
    with pytest.raises(ValueError, match='one image at a time'):
        calculate_dp_psnr(torch.rand(2, 3, H, W), torch.rand(2, 3, H, W))
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_dp_psnr(random_image(9), random_image(9)[:-1])


def test_registered_in_basicsr_metric_registry():
    assert METRIC_REGISTRY.get('calculate_dp_psnr') is calculate_dp_psnr
    assert METRIC_REGISTRY.get('calculate_dp_ssim') is calculate_dp_ssim
    assert METRIC_REGISTRY.get('calculate_dp_mae') is calculate_dp_mae
    # BasicSR's own dispatcher, as used for YAML `val: metrics:` entries (it pops 'type', passes the rest)
    gt = np.full((H, W, 3), 0.5)
    data = {'img': np.full((H, W, 3), 0.5004), 'img2': gt}
    assert calculate_metric(data, {'type': 'calculate_dp_psnr', 'protocol': '8bit'}) == math.inf
    assert calculate_metric(data, {'type': 'calculate_dp_psnr'}) == pytest.approx(calculate_dp_psnr(data['img'], gt))
    assert calculate_metric(data, {'type': 'calculate_dp_mae', 'protocol': 'float', 'better': 'lower'}) == (
        pytest.approx(0.0004, abs=1e-12)
    )


@pytest.mark.parametrize('metric', [calculate_dp_psnr, calculate_dp_ssim, calculate_dp_mae])
def test_unknown_protocol_is_a_value_error(metric):
    img = random_image(10)
    with pytest.raises(ValueError, match="Unknown metric protocol '12bit'.*16bit, 8bit, float"):
        metric(img, img, protocol='12bit')


def test_8bit_protocol_reads_the_target_as_opencv_reads_a_16bit_png():
    # cv2.imread's 8-bit default keeps the top byte: 16-bit level 511 -> 1, while the output is rounded: 511 -> 2
    gt = np.full((H, W, 3), 511 / 65535)
    assert calculate_dp_mae(gt, gt.copy(), protocol='8bit') == pytest.approx(1 / 255, abs=1e-15)
    assert calculate_dp_mae(gt, gt.copy(), protocol='16bit') == 0.0


@pytest.mark.parametrize('options', [{'protocl': '8bit'}, {'crop_border': 4}, {'test_y_channel': True}])
def test_unknown_metric_options_are_errors_not_silently_dropped(options):
    gt = np.full((H, W, 3), 0.5)
    with pytest.raises(ValueError, match='Unknown metric options'):
        calculate_dp_psnr(gt, gt, **options)
    assert calculate_dp_psnr(gt + 0.01, gt, better='higher') < math.inf  # BasicSR's own key is accepted


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


# one case a line, aligned by hand: clearer than the formatter's layout
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
