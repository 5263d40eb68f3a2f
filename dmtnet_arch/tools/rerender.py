"""Real content, synthetic degradation: a real folder's targets re-blurred by the generator's dual-pixel PSFs.

Scoring a network on the re-rendered folder and on the real one (``scripts/real_benchmark.py``) separates what
the real content costs it from what the real degradation (lens PSF, codec) costs it (docs/synthetic_data.md).
Each scene is blurred uniformly, behind the focal plane, at the median disc radius measured in its textured blocks
(``dp_statistics``), or with ``radius_map`` at each block's own measured radius (the crop's depth variation), then
its three input views are stored as the real ones are: at their bit depth and, when asked, JPEG- or
H.264-compressed.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import griddata

from dmtnet_arch.data.data_util import VIEW_FOLDERS, list_png_names
from dmtnet_arch.data.synthetic_dp import Layer, PsfModel, convolve, dual_pixel_psfs, render_layers, store_views
from dmtnet_arch.tools.dp_statistics import measure_scene, stored_bits
from dmtnet_arch.utils.img_util import bit_depth, float_to_integer, read_image, to_float, write_png

INPUT_VIEWS = ('left', 'right', 'combined')


@dataclass(frozen=True)
class Rerendering:
    """How the views are made: the PSF family, a fixed disc radius (None: each scene's measured median) and the
    JPEG quality or H.264 CRF of the stored 8-bit views (None: not compressed); ``h264_video``: the left and right
    views alternate in one video instead of being still frames; ``radius_map``: each pixel blurred at the radius
    measured around it instead of one radius per scene."""

    psf_model: PsfModel = PsfModel(ramp_strength=0.7)
    radius: float | None = None
    jpeg_quality: int | None = None
    h264_crf: int | None = None
    h264_video: bool = False
    radius_map: bool = False


def median_disc_radius(views: dict) -> float | None:
    """Median disc radius (px) of the scene's blurred textured blocks; None when it has none."""
    radii = [m.blur_radius_px for m in measure_scene('scene', views) if m.blur_radius_px >= 1.0]
    return float(np.median(radii)) if radii else None


def measured_radius_map(
    views: dict, block: int = 48, min_shift: float = 0.3, smoothing: float = 12.0
) -> np.ndarray | None:
    """Signed disc radius (px) per pixel: each textured block's measured radius at its centre, negative where its
    views shift the other way (in front of the focal plane), linearly interpolated between the blocks (the nearest
    block outside them) and smoothed by a Gaussian of ``smoothing`` px. None when the scene has no textured block."""
    blocks = measure_scene('scene', views, block=block)
    if not blocks:
        return None
    centres = np.array([(found.y + block / 2, found.x + block / 2) for found in blocks], dtype=np.float64)
    radii = np.array(
        [-found.blur_radius_px if found.shift_px < -min_shift else found.blur_radius_px for found in blocks]
    )
    grid = tuple(np.mgrid[0 : views['target'].shape[0], 0 : views['target'].shape[1]])
    linear = griddata(centres, radii, grid, method='linear')
    nearest = griddata(centres, radii, grid, method='nearest')
    radius_map = np.where(np.isnan(linear), nearest, linear).astype(np.float32)
    return cv2.GaussianBlur(radius_map, (0, 0), smoothing)


def rerender_views(target: np.ndarray, radius, bits: int, how: Rerendering) -> dict:
    """``left``, ``right``, ``combined``: ``target`` blurred by the generator's PSFs at ``radius`` (one value: behind
    focus; an (H, W) map: signed per pixel), stored at ``bits`` (8: rounded and compressed as ``how`` says; 16: as
    rendered)."""
    if bits != 8 and (how.jpeg_quality is not None or how.h264_crf is not None):
        raise ValueError(f'JPEG and H.264 compression apply to 8-bit views; these views carry {bits}-bit values')
    if np.ndim(radius) == 2:
        rendered = render_layers([Layer(target, np.ones(radius.shape, np.float32), radius)], how.psf_model)
        blurred = [rendered.left, rendered.right, rendered.combined]
    else:
        blurred = [convolve(target, psf) for psf in dual_pixel_psfs(float(radius), how.psf_model)]
    if bits == 8:
        blurred = store_views(*blurred, 8, how.jpeg_quality, how.h264_crf, how.h264_video)
    return dict(zip(INPUT_VIEWS, blurred, strict=True))


def rerender_folder(root, out, how: Rerendering = Rerendering()) -> dict:
    """Re-render every scene of an ``inputL/ inputR/ inputC/ target/`` folder into ``out`` (same layout, the files
    at their own bit depth, the values at the depth they carry; the targets copied). Returns {scene: the disc
    radius used (with ``radius_map``, the scene's median)}; a scene without blurred blocks (and no fixed radius) is
    left out and reported as None."""
    root, out = Path(root), Path(out)
    used = {}
    for name in list_png_names(root / VIEW_FOLDERS['left']):
        images = {view: read_image(root / folder / name) for view, folder in VIEW_FOLDERS.items()}
        views = {view: to_float(image) for view, image in images.items()}
        radius = how.radius if how.radius is not None else median_disc_radius(views)
        used[name] = radius
        if radius is None:
            continue
        if how.radius_map:
            radius = measured_radius_map(views)
        file_bits = bit_depth(images['left'])
        try:
            rerendered = rerender_views(views['target'], radius, stored_bits(images['left']), how)
        except ValueError as error:
            raise ValueError(f'{root / VIEW_FOLDERS["left"] / name}: {error}') from error
        for view, image in rerendered.items():
            write_png(out / VIEW_FOLDERS[view] / name, float_to_integer(image, file_bits))
        (out / VIEW_FOLDERS['target']).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / VIEW_FOLDERS['target'] / name, out / VIEW_FOLDERS['target'] / name)
    return used
