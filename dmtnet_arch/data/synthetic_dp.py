"""Synthetic dual-pixel (DP) defocus data: layered scenes, thin-lens blur and DP point spread functions.

The model follows the RDPD description (reference.md, section 4) and is documented in ``docs/synthetic_data.md``.
A scene is a stack of layers (a slanted background plane and a few foreground shapes), each with a texture, a soft
mask and a per-pixel signed circle of confusion (CoC). Every layer is blurred by the left and right DP PSFs of its
quantised CoC and composited back to front; the combined view is the mean of the two views, as a DP sensor adds its
two photodiodes. Everything is deterministic for a ``(seed, index)`` pair.
"""

import functools
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from skimage import data as skimage_data
from tqdm import tqdm

from dmtnet_arch.data.data_util import LMDB_NAMES, VIEW_FOLDERS
from dmtnet_arch.data.dead_leaves import DeadLeavesModel, dead_leaves_texture
from dmtnet_arch.utils.file_util import write_bytes_atomically
from dmtnet_arch.utils.img_util import list_images, read_image, to_float, write_png16
from dmtnet_arch.utils.lmdb_util import write_view_lmdb

DEFOCUS_FOLDER = 'defocus'
BUILTIN_SOURCE_NAMES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry', 'stereo_motorcycle')


@dataclass(frozen=True)
class CameraModel:
    """Thin lens: focal length and f-number in mm units, and the pixel pitch of the rendered image in mm."""

    focal_length_mm: float = 50.0
    f_number: float = 2.0
    pixel_pitch_mm: float = 0.1

    def coc_radius_px(self, inverse_depth: np.ndarray, focus_distance_m: float) -> np.ndarray:
        """Signed CoC radius in pixels: negative in front of the focal plane, positive behind it."""
        f = self.focal_length_mm
        focus_mm = focus_distance_m * 1000.0
        aperture_mm = f / self.f_number
        inverse_depth_per_mm = np.asarray(inverse_depth, dtype=np.float64) / 1000.0
        diameter_mm = aperture_mm * f * focus_mm / (focus_mm - f) * (1.0 / focus_mm - inverse_depth_per_mm)
        return (diameter_mm / (2.0 * self.pixel_pitch_mm)).astype(np.float32)


@dataclass(frozen=True)
class PsfModel:
    """DP PSF shape: bright-rim disc (Butterworth high-pass with floor), Gaussian softening, in-focus threshold.

    ``rim_floor`` is the centre's brightness relative to the rim: below 1 a bright rim, 1 a flat disc, above 1 a
    bright centre. The softening's sigma is ``sigma_px + sigma_per_radius * radius``."""

    rim_floor: float = 0.5
    rim_order: int = 3
    rim_cutoff: float = 0.75
    sigma_px: float = 0.5
    sigma_per_radius: float = 0.05
    in_focus_radius: float = 0.5
    ramp_strength: float = 1.0
    shape_variation: float = 0.0

    def varied(self, rng: np.random.Generator) -> 'PsfModel':
        """This shape with ramp strength, rim floor and softening each scaled by a factor drawn in
        [1 - shape_variation, 1 + shape_variation] (steps of 0.05, so the PSF cache still hits): one per sample.
        The ramp strength stays at most 1; a rim floor above 1 (a brighter centre) is a valid shape."""

        def scaled(value: float, top: float) -> float:
            factor = np.round(rng.uniform(1 - self.shape_variation, 1 + self.shape_variation) / 0.05) * 0.05
            return float(np.clip(value * factor, 0.0, top))

        return replace(
            self,
            ramp_strength=scaled(self.ramp_strength, 1.0),
            rim_floor=scaled(self.rim_floor, np.inf),
            sigma_per_radius=scaled(self.sigma_per_radius, np.inf),
            shape_variation=0.0,
        )


@dataclass(frozen=True)
class NoiseModel:
    """Poisson-Gaussian sensor noise on [0, 1] signals: variance = shot_gain * signal + read_std ** 2."""

    shot_gain: float = 0.0
    read_std: float = 0.0

    @classmethod
    def from_std(cls, noise_std: float) -> 'NoiseModel':
        """Noise whose standard deviation at mid-grey (0.5) is ``noise_std``, half shot and half read variance."""
        return cls(shot_gain=noise_std**2, read_std=noise_std / np.sqrt(2.0))

    @property
    def enabled(self) -> bool:
        """True when any noise is added."""
        return self.shot_gain > 0 or self.read_std > 0


@dataclass(frozen=True)
class CameraPipeline:
    """What happens between the photodiodes and the file: rendering in linear light and a gamma tone curve, a
    left/right brightness gradient (the two half-pupils vignette differently), and 8-bit quantisation with
    optional JPEG or H.264 compression of the three input views (the target stays clean at 16 bits). JPEG quality
    and H.264 CRF are ``(low, high)`` ranges drawn per sample. ``h264_video``: the left and right views alternate
    as the frames of one video (inter-coded, as a dual-pixel animation stores them) instead of each being an intra
    frame of its own."""

    linear_light: bool = False
    gamma: float = 2.2
    view_gain_gradient: float = 0.0
    bits: int = 16
    jpeg_quality: tuple | None = None
    h264_crf: tuple | None = None
    h264_video: bool = False

    def __post_init__(self):
        if self.jpeg_quality is not None and self.h264_crf is not None:
            raise ValueError('CameraPipeline: jpeg_quality and h264_crf are two codecs for the same views; give one')
        if self.h264_video and self.h264_crf is None:
            raise ValueError('CameraPipeline: h264_video codes the views as a video and needs h264_crf')

    def to_linear(self, image: np.ndarray) -> np.ndarray:
        """Display-referred values to linear light (identity unless ``linear_light``)."""
        return np.power(image, self.gamma).astype(np.float32) if self.linear_light else image

    def to_display(self, image: np.ndarray) -> np.ndarray:
        """Linear light back through the tone curve (identity unless ``linear_light``)."""
        if not self.linear_light:
            return image
        return np.power(np.clip(image, 0.0, 1.0), 1.0 / self.gamma).astype(np.float32)


@dataclass
class Layer:
    """One scene surface: RGB texture (H, W, 3), soft mask (H, W) and signed CoC radius per pixel (H, W)."""

    texture: np.ndarray
    mask: np.ndarray
    coc: np.ndarray


@dataclass
class RenderedSample:
    """Rendered views and all-in-focus target (H, W, 3, float32 in [0, 1]) plus signed CoC radius map (H, W)."""

    left: np.ndarray
    right: np.ndarray
    combined: np.ndarray
    target: np.ndarray
    defocus: np.ndarray


# ----------------------------------------------------------------------------------------------- point spread functions


def psf_half_width(radius: float, psf_model: PsfModel) -> int:
    """Half width of the PSF grid: the disc plus three Gaussian sigmas and a pixel of margin."""
    return int(np.ceil(radius + 3.0 * gaussian_sigma(radius, psf_model))) + 1


def gaussian_sigma(radius: float, psf_model: PsfModel) -> float:
    """Standard deviation of the Gaussian that softens a disc of this radius."""
    return psf_model.sigma_px + psf_model.sigma_per_radius * radius


def bright_rim_disc(radius: float, psf_model: PsfModel) -> np.ndarray:
    """Anti-aliased disc whose brightness rises towards the rim (radial Butterworth high-pass with a floor)."""
    half = psf_half_width(radius, psf_model)
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    rho = np.hypot(x, y)
    coverage = np.clip(radius + 0.5 - rho, 0.0, 1.0)
    power = 2 * psf_model.rim_order
    high_pass = rho**power / (rho**power + (psf_model.rim_cutoff * radius) ** power)
    rim_weight = psf_model.rim_floor + (1.0 - psf_model.rim_floor) * high_pass
    return coverage * rim_weight


def horizontal_ramp(shape: tuple, radius: float, falling: bool, strength: float = 1.0) -> np.ndarray:
    """Linear ramp across the disc diameter, clipped outside it: from 0 to 1 at ``strength`` 1, from
    (1 - strength) / 2 to (1 + strength) / 2 below that (1 to 0 when ``falling``); the two views' ramps add to 1."""
    half = shape[1] // 2
    x = np.arange(-half, half + 1, dtype=np.float64)
    rising = 0.5 + strength * (np.clip((x + radius) / (2.0 * radius), 0.0, 1.0) - 0.5)
    ramp = 1.0 - rising if falling else rising
    return np.broadcast_to(ramp, shape)


@functools.lru_cache(maxsize=256)
def dual_pixel_psfs(signed_radius: float, psf_model: PsfModel = PsfModel()) -> tuple:
    """Left, right and combined PSFs (unit sums) for a signed CoC radius; right = mirror of left, combined = mean."""
    radius = abs(signed_radius)
    if radius < psf_model.in_focus_radius:
        delta = np.ones((1, 1), dtype=np.float32)
        return read_only(delta), read_only(delta.copy()), read_only(delta.copy())
    softened = ndimage.gaussian_filter(bright_rim_disc(radius, psf_model), gaussian_sigma(radius, psf_model))
    behind_focus = signed_radius > 0
    left = softened * horizontal_ramp(softened.shape, radius, falling=behind_focus, strength=psf_model.ramp_strength)
    left = (left / left.sum()).astype(np.float32)
    right = np.ascontiguousarray(left[:, ::-1])
    combined = (left + right) / 2.0
    return read_only(left), read_only(right), read_only(combined)


def read_only(array: np.ndarray) -> np.ndarray:
    """Mark an array read-only so cached PSFs cannot be changed by a caller."""
    array.setflags(write=False)
    return array


def convolve(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """True convolution (not correlation) of an (H, W, C) float32 image with a PSF, reflecting at the borders."""
    if psf.shape == (1, 1):
        return image * psf[0, 0]
    flipped = np.ascontiguousarray(psf[::-1, ::-1])
    blurred = cv2.filter2D(image, -1, flipped, borderType=cv2.BORDER_REFLECT_101)
    return blurred.reshape(image.shape)


# ---------------------------------------------------------------------------------------------------------- rendering


def quantise_coc(coc: np.ndarray, coc_step: float, in_focus_radius: float) -> np.ndarray:
    """Integer CoC bin per pixel (bin k uses the PSFs of radius k * coc_step); |coc| < in_focus_radius is bin 0."""
    bins = np.round(coc / coc_step).astype(np.int32)
    return np.where(np.abs(coc) < in_focus_radius, 0, bins)


def blur_layer(layer: Layer, psf_model: PsfModel, coc_step: float) -> tuple:
    """Premultiplied RGBA of one layer as seen by the left and the right view, each CoC bin with its own PSFs."""
    bins = quantise_coc(layer.coc, coc_step, psf_model.in_focus_radius)
    ones = np.ones_like(layer.mask)
    rgba_and_weight = np.dstack([layer.texture * layer.mask[..., None], layer.mask, ones]).astype(np.float32)
    left = np.zeros_like(rgba_and_weight)
    right = np.zeros_like(rgba_and_weight)
    for coc_bin in np.unique(bins):
        in_bin = bins == coc_bin
        psf_left, psf_right, _ = dual_pixel_psfs(float(coc_bin * coc_step), psf_model)
        window = bin_window(in_bin, psf_left.shape[0] // 2)
        part = rgba_and_weight[window] * in_bin[window][..., None]
        left[window] += convolve(part, psf_left)
        right[window] += convolve(part, psf_right)
    return normalise_by_partition(left), normalise_by_partition(right)


def bin_window(in_bin: np.ndarray, half_width: int) -> tuple:
    """Slices of the bin's bounding box grown by the PSF's half width, clipped to the frame: the blurred bin is zero
    outside, and inside it the convolution equals the whole frame's (the zero margin reflects as zeros)."""
    rows, columns = np.any(in_bin, axis=1), np.any(in_bin, axis=0)
    top, bottom = np.flatnonzero(rows)[[0, -1]]
    left, right = np.flatnonzero(columns)[[0, -1]]
    height, width = in_bin.shape
    return (
        slice(max(top - half_width, 0), min(bottom + half_width + 1, height)),
        slice(max(left - half_width, 0), min(right + half_width + 1, width)),
    )


def normalise_by_partition(blurred: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA divided by the blurred partition of unity (channel 4), then capped at alpha 1.

    Adjacent CoC bins blur with slightly different (and, for DP views, slightly shifted) PSFs, so their blurred
    indicators do not add up to exactly 1 along bin seams; dividing by that sum removes the seam lines.
    """
    rgba = blurred[..., :4] / np.maximum(blurred[..., 4:], 1e-6)
    return rgba / np.maximum(rgba[..., 3:], 1.0)


def composite_over(below: np.ndarray, premultiplied_rgba: np.ndarray) -> np.ndarray:
    """Porter-Duff 'over' of a premultiplied RGBA layer onto an RGB image."""
    return below * (1.0 - premultiplied_rgba[..., 3:]) + premultiplied_rgba[..., :3]


def render_layers(layers: list, psf_model: PsfModel = PsfModel(), coc_step: float = 0.5) -> RenderedSample:
    """Render layers ordered back to front into left, right, combined, target and the visible CoC map."""
    height, width = layers[0].mask.shape
    left = np.zeros((height, width, 3), dtype=np.float32)
    right = np.zeros_like(left)
    target = np.zeros_like(left)
    defocus = np.zeros((height, width), dtype=np.float32)
    for layer in layers:
        blurred_left, blurred_right = blur_layer(layer, psf_model, coc_step)
        left = composite_over(left, blurred_left)
        right = composite_over(right, blurred_right)
        sharp = np.dstack([layer.texture * layer.mask[..., None], layer.mask]).astype(np.float32)
        target = composite_over(target, sharp)
        rendered_coc = quantise_coc(layer.coc, coc_step, psf_model.in_focus_radius) * np.float32(coc_step)
        defocus = np.where(layer.mask >= 0.5, rendered_coc, defocus).astype(np.float32)
    left, right, target = (np.clip(view, 0.0, 1.0) for view in (left, right, target))
    return RenderedSample(left, right, (left + right) / 2.0, target, defocus)


def add_sensor_noise(sample: RenderedSample, noise: NoiseModel, rng: np.random.Generator) -> RenderedSample:
    """Independent Poisson-Gaussian noise on each photodiode view; the combined view stays their mean."""
    if not noise.enabled:
        return sample
    left, right = (noisy_view(view, noise, rng) for view in (sample.left, sample.right))
    return RenderedSample(left, right, (left + right) / 2.0, sample.target, sample.defocus)


def imbalance_views(sample: RenderedSample, gradient: float) -> RenderedSample:
    """Left view brighter towards one side of the frame and the right view towards the other: gains
    ``1 + gradient * (x - 1/2)`` and ``1 - gradient * (x - 1/2)`` with x in [0, 1] across the width."""
    if gradient == 0:
        return sample
    x = np.linspace(-0.5, 0.5, sample.left.shape[1], dtype=np.float32)[None, :, None]
    left = np.clip(sample.left * (1.0 + gradient * x), 0.0, 1.0)
    right = np.clip(sample.right * (1.0 - gradient * x), 0.0, 1.0)
    return RenderedSample(left, right, (left + right) / 2.0, sample.target, sample.defocus)


def quantise_and_compress(
    view: np.ndarray, bits: int, jpeg_quality: int | None = None, h264_crf: int | None = None
) -> np.ndarray:
    """A view as an 8-bit camera or video file holds it: rounded to 8 bits and, with ``jpeg_quality``,
    JPEG-compressed, or with ``h264_crf``, coded as one H.264 frame."""
    if bits == 16 and jpeg_quality is None and h264_crf is None:
        return view
    codes = np.round(np.clip(view, 0.0, 1.0) * 255.0).astype(np.uint8)
    if jpeg_quality is not None:
        ok, encoded = cv2.imencode('.jpg', codes, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        codes = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if h264_crf is not None:
        codes = h264_frame(codes, h264_crf)
    return codes.astype(np.float32) / 255.0


def h264_frame(codes: np.ndarray, crf: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB through one intra-coded H.264 frame, as a video stores it (a still: 1 frame/s)."""
    return h264_video(codes[None], crf, frame_rate=1)[0]


def h264_video(frames: np.ndarray, crf: int, frame_rate: int = 25) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames through one H.264 video (libx264 CRF, preset medium, yuv420p, one thread:
    deterministic); the first frame is intra-coded, later ones predicted from earlier ones. x264's CRF depends on
    the frame rate (the same CRF loses more at 25 frames/s than at 1). Odd sizes are padded by edge pixels for the
    4:2:0 chroma and cropped back."""
    try:
        import av
    except ImportError as error:
        raise ImportError("H.264 compression needs PyAV: pip install av (the plugin's [video] extra)") from error
    height, width = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode='edge')
    buffer = io.BytesIO()
    with av.open(buffer, 'w', format='mp4') as container:
        stream = container.add_stream('libx264', rate=frame_rate)
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], 'yuv420p'
        stream.options = {'crf': str(int(crf)), 'preset': 'medium', 'threads': '1'}
        for frame in padded:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]
    return np.ascontiguousarray(np.stack(decoded)[:, :height, :width])


def h264_alternating_views(left: np.ndarray, right: np.ndarray, crf: int, repeats: int = 3) -> tuple:
    """Left and right views (float RGB in [0, 1]) shown alternately, ``repeats`` times each, in one H.264 video, as
    the DPDD authors' animations show them; each view is the mean of its decoded frames, at 8-bit levels. The
    codec predicts each view from the other, so what separates them (the disparity) is what it codes coarsely."""
    codes = [np.round(np.clip(view, 0.0, 1.0) * 255.0).astype(np.uint8) for view in (left, right)]
    decoded = h264_video(np.stack(codes * repeats), crf).astype(np.float32)
    return tuple(np.round(decoded[index::2].mean(axis=0)) / 255.0 for index in (0, 1))


def store_views(
    left: np.ndarray,
    right: np.ndarray,
    combined: np.ndarray,
    bits: int,
    jpeg_quality: int | None = None,
    h264_crf: int | None = None,
    h264_video: bool = False,
) -> tuple:
    """Left, right and combined views as the files hold them (:func:`quantise_and_compress`); with ``h264_video``
    the left and right views alternate in one video (:func:`h264_alternating_views`) and the combined view is a
    still frame."""
    if h264_video:
        if h264_crf is None:
            raise ValueError('h264_video codes the views as a video and needs h264_crf')
        left, right = h264_alternating_views(left, right, h264_crf)
    else:
        left, right = (quantise_and_compress(view, bits, jpeg_quality, h264_crf) for view in (left, right))
    return left, right, quantise_and_compress(combined, bits, jpeg_quality, h264_crf)


def through_camera(sample: RenderedSample, pipeline: CameraPipeline, rng: np.random.Generator) -> RenderedSample:
    """Tone curve on every view and the target; quantisation and compression on the input views only."""
    quality, crf = (
        None if span is None else int(rng.integers(span[0], span[1] + 1))
        for span in (pipeline.jpeg_quality, pipeline.h264_crf)
    )
    views = (pipeline.to_display(view) for view in (sample.left, sample.right, sample.combined))
    stored = store_views(*views, pipeline.bits, quality, crf, pipeline.h264_video)
    return RenderedSample(*stored, pipeline.to_display(sample.target), sample.defocus)


def noisy_view(view: np.ndarray, noise: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """One view with shot noise (scaled Poisson) and read noise (Gaussian), clipped to [0, 1]."""
    signal = view.astype(np.float64)
    if noise.shot_gain > 0:
        signal = rng.poisson(signal / noise.shot_gain) * noise.shot_gain
    signal = signal + rng.normal(0.0, noise.read_std, size=view.shape)
    return np.clip(signal, 0.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------------ sharp sources


@functools.lru_cache(maxsize=1)
def builtin_sources() -> tuple:
    """scikit-image's natural colour photographs shipped inside the package (no download), as RGB float32."""
    images = []
    for name in BUILTIN_SOURCE_NAMES:
        image = getattr(skimage_data, name)()
        image = image[0] if isinstance(image, tuple) else image
        images.append(read_only(to_float_rgb(image)))
    return tuple(images)


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """RGB float32 in [0, 1] from an 8- or 16-bit grey, RGB or RGBA array (textures may be any of these)."""
    image = to_float(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def load_source_folder(folder) -> list:
    """Every image directly inside ``folder`` (sorted by name) as RGB float32; an unreadable one is an error."""
    images = []
    for path in list_images(folder):
        try:
            images.append(to_float_rgb(read_image(path, rgb_only=False)))
        except ValueError as error:
            reason = str(error).removeprefix(f'{path}: ')
            raise ValueError(f'{path}: cannot be read as an 8- or 16-bit image (--sources): {reason}') from None
    if not images:
        raise FileNotFoundError(f'no readable images in {folder}')
    return images


def collect_sources(sources_dir=None, include_builtin: bool = True) -> list:
    """Built-in photographs followed by the images of an optional user folder."""
    sources = list(builtin_sources()) if include_builtin else []
    if sources_dir is not None:
        sources += load_source_folder(sources_dir)
    if not sources:
        raise ValueError('no sharp source images')
    return sources


def random_texture(sources: list, size: tuple, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a random source, rescaled to ``size`` (H, W) and randomly mirrored."""
    source = sources[rng.integers(len(sources))]
    height, width = size
    source_height, source_width = source.shape[:2]
    largest_crop_height = min(source_height, source_width * height / width)
    crop_height = max(1, int(largest_crop_height * rng.uniform(0.3, 1.0)))
    crop_width = max(1, min(source_width, int(round(crop_height * width / height))))
    top = rng.integers(source_height - crop_height + 1)
    left = rng.integers(source_width - crop_width + 1)
    crop = source[top : top + crop_height, left : left + crop_width]
    shrinking = crop.shape[0] > height
    texture = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    texture = np.clip(texture, 0.0, 1.0)
    return texture[:, ::-1] if rng.random() < 0.5 else texture


# --------------------------------------------------------------------------------------------------------- scene model


def random_mask(size: tuple, rng: np.random.Generator) -> np.ndarray:
    """A soft-edged random shape: an ellipse, a star-shaped polygon or a smooth blob."""
    kind = rng.integers(3)
    if kind == 2:
        return blob_mask(size, rng)
    canvas = np.zeros(size, dtype=np.uint8)
    height, width = size
    centre = rng.uniform(0.2, 0.8, size=2) * (width, height)
    extent = rng.uniform(0.12, 0.35) * min(height, width)
    if kind == 0:
        axes = extent * rng.uniform(0.5, 1.0, size=2)
        box = (tuple(centre), tuple(2 * axes), float(rng.uniform(0, 180)))
        cv2.ellipse(canvas, box, 255, thickness=-1, lineType=cv2.LINE_AA)
    else:
        cv2.fillPoly(canvas, [star_polygon(centre, extent, rng)], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def star_polygon(centre: np.ndarray, extent: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices (fixed point, 4 fractional bits) of a random star-shaped polygon around ``centre``."""
    count = rng.integers(5, 12)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=count))
    radii = extent * rng.uniform(0.4, 1.0, size=count)
    points = centre + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.round(points * 16).astype(np.int32)


def blob_mask(size: tuple, rng: np.random.Generator) -> np.ndarray:
    """Smooth random blob: low-pass filtered noise thresholded with a one-pixel soft edge."""
    smoothness = 0.08 * min(size)
    field = ndimage.gaussian_filter(rng.standard_normal(size), smoothness, mode='wrap')
    field = field / (field.std() + 1e-12)
    threshold = rng.uniform(0.5, 1.2)
    gradient = np.hypot(*np.gradient(field)) + 1e-6
    return np.clip(0.5 + (field - threshold) / gradient, 0.0, 1.0).astype(np.float32)


def inverse_depth_plane(size: tuple, centre: float, tilt: np.ndarray) -> np.ndarray:
    """Inverse depth (1/m) of a 3D plane: affine in image coordinates; ``tilt`` = change across the frame (x, y)."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    plane = centre + tilt[0] * (x / max(width - 1, 1) - 0.5) + tilt[1] * (y / max(height - 1, 1) - 0.5)
    return np.maximum(plane, 0.02)


@dataclass(frozen=True)
class ContentModel:
    """Where layer textures come from: dead leaves (procedural) with this probability, else a photograph."""

    dead_leaves_probability: float = 0.0
    dead_leaves: DeadLeavesModel = DeadLeavesModel()

    def texture(self, sources: list, size: tuple, rng: np.random.Generator) -> np.ndarray:
        """One layer's texture: dead leaves coloured from the photographs, or a crop of one photograph."""
        if rng.random() < self.dead_leaves_probability:
            return dead_leaves_texture(size, sources, rng, self.dead_leaves)
        return random_texture(sources, size, rng)


@dataclass(frozen=True)
class SceneRanges:
    """Sampling ranges for scenes, in inverse depth (1/m, dioptres) and counts."""

    background_inverse_depth: tuple = (0.05, 0.6)
    nearest_inverse_depth: float = 2.0
    foreground_layers: tuple = (1, 3)
    random_focus_inverse_depth: tuple = (0.25, 1.25)
    focus_on_scene_probability: float = 0.7
    focus_on_foreground_probability: float = 0.0
    focus_on_nearest_probability: float = 0.0


def random_scene(
    rng: np.random.Generator,
    size: tuple,
    sources: list,
    camera: CameraModel,
    ranges: SceneRanges = SceneRanges(),
    content: ContentModel = ContentModel(),
) -> list:
    """Layers back to front: a slanted background plane and foreground shapes, with CoC for a random focus."""
    background_centre = rng.uniform(*ranges.background_inverse_depth)
    depths = [inverse_depth_plane(size, background_centre, rng.uniform(-0.5, 0.5, size=2) * background_centre)]
    masks = [np.ones(size, dtype=np.float32)]
    layer_count = rng.integers(ranges.foreground_layers[0], ranges.foreground_layers[1] + 1)
    centres = np.sort(rng.uniform(background_centre + 0.1, ranges.nearest_inverse_depth, size=layer_count))
    for centre in centres:
        tilt = rng.uniform(-0.2, 0.2, size=2) if rng.random() < 0.5 else np.zeros(2)
        depths.append(inverse_depth_plane(size, centre, tilt))
        masks.append(random_mask(size, rng))
    focus_distance = 1.0 / focus_inverse_depth(depths, masks, rng, ranges)
    return [
        Layer(content.texture(sources, size, rng), mask, camera.coc_radius_px(depth, focus_distance))
        for depth, mask in zip(depths, masks, strict=True)
    ]


def front_most(layer_values: list, masks: list) -> np.ndarray:
    """Per pixel, the value of what it shows: that of the front-most layer whose mask covers it (layers back to
    front, the first covering everything), e.g. the visible inverse depth or CoC."""
    visible = np.array(layer_values[0], copy=True)
    for values, mask in zip(layer_values[1:], masks[1:], strict=True):
        visible = np.where(mask >= 0.5, values, visible)
    return visible


def focus_inverse_depth(depths: list, masks: list, rng: np.random.Generator, ranges: SceneRanges) -> float:
    """Autofocus on the nearest visible point (with ``focus_on_nearest_probability``: nothing visible is in front of
    the focal plane), else on a random visible pixel most of the time, otherwise a random focus distance."""
    if ranges.focus_on_nearest_probability and rng.random() < ranges.focus_on_nearest_probability:
        return float(front_most(depths, masks).max())
    if rng.random() >= ranges.focus_on_scene_probability:
        return float(rng.uniform(*ranges.random_focus_inverse_depth))
    visible = front_most(depths, masks)
    foreground = np.flatnonzero(visible.ravel() != depths[0].ravel())
    if (
        ranges.focus_on_foreground_probability
        and foreground.size
        and rng.random() < ranges.focus_on_foreground_probability
    ):
        return float(visible.ravel()[foreground[rng.integers(foreground.size)]])
    row, column = rng.integers(visible.shape[0]), rng.integers(visible.shape[1])
    return float(visible[row, column])


def generate_sample(
    seed: int,
    index: int,
    size,
    sources: list,
    camera: CameraModel = CameraModel(),
    psf_model: PsfModel = PsfModel(),
    noise: NoiseModel = NoiseModel(),
    coc_step: float = 0.5,
    content: ContentModel = ContentModel(),
    pipeline: CameraPipeline = CameraPipeline(),
    scene: SceneRanges = SceneRanges(),
) -> RenderedSample:
    """One random scene rendered as a DP sample; the same (seed, index) always gives the same arrays."""
    rng = np.random.default_rng([seed, index])
    layers = random_scene(rng, as_size(size), sources, camera, scene, content)
    for layer in layers:
        layer.texture = pipeline.to_linear(layer.texture)
    if psf_model.shape_variation:
        psf_model = psf_model.varied(rng)
    sample = render_layers(layers, psf_model, coc_step)
    if pipeline.view_gain_gradient:
        sample = imbalance_views(sample, float(rng.uniform(-1.0, 1.0)) * pipeline.view_gain_gradient)
    return through_camera(add_sensor_noise(sample, noise, rng), pipeline, rng)


def as_size(size) -> tuple:
    """(H, W) from an int (square) or a pair."""
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


# --------------------------------------------------------------------------------------------------------------- files


def write_npy(path: Path, array: np.ndarray) -> None:
    """Save an array in NumPy's .npy format."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes_atomically(path, buffer.getvalue())


def defocus_path(root, name: str) -> Path:
    """Where the generator writes the defocus map of sample ``name`` of the set at ``root``."""
    return Path(root) / DEFOCUS_FOLDER / f'{name}.npy'


def has_defocus(root) -> bool:
    """Whether the set at ``root`` has the generator's defocus maps."""
    return (Path(root) / DEFOCUS_FOLDER).is_dir()


def load_defocus(root, name: str) -> np.ndarray:
    """The defocus map of sample ``name`` of a generated set: float32, signed CoC radius in pixels (negative: in
    front of the focus plane)."""
    return np.load(defocus_path(root, name), allow_pickle=False)


def write_sample(out: Path, name: str, sample: RenderedSample) -> None:
    """The four views as 16-bit PNGs and the signed CoC radius map as float32 .npy."""
    for attribute, folder in VIEW_FOLDERS.items():
        write_png16(out / folder / f'{name}.png', getattr(sample, attribute))
    write_npy(defocus_path(out, name), sample.defocus)


def remove_stale_samples(out: Path, count: int) -> None:
    """Delete numbered samples left over from an earlier, larger run so every folder holds exactly ``count``."""
    for folder in [*VIEW_FOLDERS.values(), DEFOCUS_FOLDER]:
        for path in (out / folder).iterdir():
            if path.stem.isdigit() and int(path.stem) >= count and path.suffix in ('.png', '.npy'):
                path.unlink()


def write_lmdbs(out: Path, names: list) -> None:
    """BasicSR LMDBs (lqL, lqR, lqC, gt) of the written PNGs; 16-bit values are kept (PNG-encoded, unchanged)."""
    for view, folder in VIEW_FOLDERS.items():
        write_view_lmdb(out / folder, out / f'{LMDB_NAMES[view]}.lmdb', [f'{name}.png' for name in names])


def generate_dataset(
    out,
    count: int,
    size=128,
    seed: int = 0,
    sources_dir=None,
    noise_std: float = 0.0,
    camera: CameraModel = CameraModel(),
    psf_model: PsfModel = PsfModel(),
    coc_step: float = 0.5,
    content: ContentModel = ContentModel(),
    pipeline: CameraPipeline = CameraPipeline(),
    scene: SceneRanges = SceneRanges(),
    write_lmdb: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``count`` samples under ``out`` (inputL/, inputR/, inputC/, target/, defocus/) and return ``out``.

    A re-run with the same arguments writes the same bytes, and replaces a set already there (samples beyond
    ``count`` are deleted); ``synthetic_dp.json`` records the settings. docs/synthetic_data.md describes the model.

    Args:
        out: Folder of the set.
        count (int): Number of samples, at least 1.
        size (int | tuple): Image size: N for N x N, or (height, width). Default: 128.
        seed (int): Seed of everything drawn; sample i draws from (seed, i). Default: 0.
        sources_dir: Folder of sharp images used as textures besides the built-in photographs. Default: None.
        noise_std (float): Sensor noise standard deviation at mid-grey, in [0, 1]; 0 is off. Default: 0.0.
        camera (CameraModel): Thin lens and pixel pitch: how much blur a depth gives.
        psf_model (PsfModel): Shape of the dual-pixel point spread functions.
        coc_step (float): Blur radii are quantised to steps of this many pixels for rendering. Default: 0.5.
        content (ContentModel): Where layer textures come from (photographs or dead leaves).
        pipeline (CameraPipeline): Tone curve, view imbalance, bit depth and JPEG of the input views.
        scene (SceneRanges): Sampling ranges of depths and layer counts.
        write_lmdb (bool): Also write BasicSR LMDBs of the four views. Default: False.
        progress (bool): Show a progress bar. Default: True.
    """
    out = Path(out)
    if not isinstance(count, int) or count < 1:  # before anything: a re-run replaces (deletes) an existing set
        raise ValueError(f'count must be a whole number of at least 1, got {count!r}; nothing in {out} was touched')
    for folder in [*VIEW_FOLDERS.values(), DEFOCUS_FOLDER]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    sources = collect_sources(sources_dir)
    noise = NoiseModel.from_std(noise_std)
    names = [f'{index:06d}' for index in range(count)]
    for index, name in enumerate(tqdm(names, desc='synthetic DP', unit='sample', disable=not progress)):
        sample = generate_sample(
            seed, index, size, sources, camera, psf_model, noise, coc_step, content, pipeline, scene
        )
        write_sample(out, name, sample)
    remove_stale_samples(out, count)
    settings = {
        'count': count,
        'size': list(as_size(size)),
        'seed': seed,
        'sources_dir': None if sources_dir is None else str(sources_dir),
        'noise': asdict(noise),
        'camera': asdict(camera),
        'psf': asdict(psf_model),
        'coc_step': coc_step,
        'content': asdict(content),
        'scene': asdict(scene),
        'pipeline': asdict(pipeline),
        'defocus': 'float32 .npy, signed CoC radius in pixels (negative: in front of focus)',
    }
    write_bytes_atomically(out / 'synthetic_dp.json', json.dumps(settings, indent=2).encode())
    if write_lmdb:
        write_lmdbs(out, names)
    return out
