"""Measuring dual-pixel statistics on real captures: view disparity against blur size, and left/right imbalance.

``scripts/measure_dp_statistics.py`` runs this on any folder in the ``inputL/ inputR/ inputC/ target/`` layout;
the synthetic generator's defaults were chosen from its output on real Canon crops (``docs/synthetic_data.md``).
For every textured block, the horizontal shift of the right view against the left is the sub-pixel peak of their
normalised cross-correlation, and the blur is the radius of the disc that best turns the sharp target into the
combined view there. The PSF shape is a least-squares kernel from the target to each view, pooled over blocks of
similar blur, and the generator's PSF family fitted to those kernels. The inputs' compression is how far the mean
of the two views is from the combined view, matched against the same statistic on the scene's own target rendered
by the generator and compressed at each JPEG quality or H.264 CRF.
"""

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dmtnet_arch.data.data_util import VIEW_FOLDERS, list_png_names
from dmtnet_arch.data.synthetic_dp import PsfModel, convolve, dual_pixel_psfs, quantise_and_compress
from dmtnet_arch.utils.disparity_util import block_shifts, focal_side_counts, grey
from dmtnet_arch.utils.img_util import bit_depth, read_image, to_float

DISC_RADII = tuple(np.arange(0.0, 16.5, 0.5))


@dataclass(frozen=True)
class BlockMeasurement:
    """One block: its position, the right view's horizontal shift against the left (px), the disc radius (px), its
    side (px)."""

    name: str
    y: int
    x: int
    shift_px: float
    blur_radius_px: float
    match_error: float
    size: int = 48

    @property
    def window(self) -> tuple:
        """The block's pixels as an index: ``image[block.window]``."""
        return slice(self.y, self.y + self.size), slice(self.x, self.x + self.size)


def disc_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disc of unit sum; radius 0 is a delta."""
    half = int(np.ceil(radius)) + 1
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0)
    return kernel / kernel.sum()


def disc_blurs(target: np.ndarray) -> list:
    """The sharp target blurred by every disc of :data:`DISC_RADII`."""
    return [cv2.filter2D(target, -1, disc_kernel(radius), borderType=cv2.BORDER_REFLECT_101) for radius in DISC_RADII]


def best_disc_radius(blurs: list, combined: np.ndarray, box: tuple) -> tuple[float, float]:
    """Disc radius whose blur of the target best matches ``combined`` inside ``box`` (gain and offset fitted), and
    the remaining error as a fraction of the block's variance."""
    top, left, size = box
    errors = []
    reference = combined[top : top + size, left : left + size].ravel()
    for blurred in blurs:
        patch = blurred[top : top + size, left : left + size].ravel()
        design = np.stack([patch, np.ones_like(patch)], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, reference, rcond=None)
        errors.append(float(np.mean((design @ coefficients - reference) ** 2)))
    best = int(np.argmin(errors))
    return DISC_RADII[best], errors[best] / (reference.var() + 1e-12)


def measure_scene(name: str, views: dict, block: int = 48, max_shift: int = 8, min_std: float = 0.02) -> list:
    """Block measurements of one scene; ``views`` holds float RGB ``left``, ``right``, ``combined``, ``target``."""
    left, right, combined, target = (grey(views[key]) for key in ('left', 'right', 'combined', 'target'))
    blurs = disc_blurs(target)
    measurements = []
    for top, x0, shift in block_shifts(left, right, block, max_shift, min_std):
        radius, error = best_disc_radius(blurs, combined, (top, x0, block))
        measurements.append(BlockMeasurement(name, top, x0, shift, radius, error, block))
    return measurements


def shift_against_blur(measurements: list, max_error: float = 0.2) -> dict:
    """Median |shift| per disc radius (blocks whose disc fit explains most of the variance) and the slope of a
    least-squares line through the origin: px of view shift per px of blur radius."""
    good = [m for m in measurements if m.match_error <= max_error]
    radii = np.array([m.blur_radius_px for m in good])
    shifts = np.abs(np.array([m.shift_px for m in good]))
    by_radius = {}
    for radius in sorted(set(radii.tolist())):
        chosen = shifts[radii == radius]
        by_radius[radius] = (float(np.median(chosen)), int(chosen.size))
    blurred = radii >= 1.0
    slope = float((radii[blurred] * shifts[blurred]).sum() / max((radii[blurred] ** 2).sum(), 1e-12))
    return {'blocks': len(good), 'by_radius': by_radius, 'slope': slope}


RADIUS_BINS = (0.0, 1.0, 3.0, 6.0, 10.0)


def blurred_side_shares(measurements: list, min_radius: float = 1.0) -> dict:
    """Of the blocks blurred by at least ``min_radius`` px, the share behind the focal plane, in front of it and
    undecided (:func:`~dmtnet_arch.utils.disparity_util.focal_side_counts`; what ``--focus-on-nearest`` was
    matched on)."""
    counts = focal_side_counts([m.shift_px for m in measurements if m.blur_radius_px >= min_radius])
    total = max(sum(counts.values()), 1)
    return {side: count / total for side, count in counts.items()}


def radius_shares(measurements: list, edges: tuple = RADIUS_BINS) -> dict:
    """Share of the textured blocks per disc-radius bin, {(low, high): share}, the last bin open-ended: how the
    blur sizes of a set are spread (what ``--focus-on-scene`` and ``--random-focus`` were matched on)."""
    radii = np.array([m.blur_radius_px for m in measurements])
    bounds = (*edges, np.inf)
    counts = np.histogram(radii, bounds)[0]
    return {
        (low, high): float(count / max(radii.size, 1))
        for low, high, count in zip(bounds[:-1], bounds[1:], counts, strict=True)
    }


def view_balance(views: dict, columns: int = 8) -> np.ndarray:
    """Ratio of the left view's mean brightness to the right view's in ``columns`` vertical strips, left to right."""
    left, right = grey(views['left']), grey(views['right'])
    strips = np.array_split(np.arange(left.shape[1]), columns)
    return np.array([left[:, s].mean() / max(right[:, s].mean(), 1e-9) for s in strips])


def stored_bits(image: np.ndarray) -> int:
    """Bits per channel the values carry: 8 for a uint8 image or a uint16 one holding only multiples of 257 (8-bit
    values written at 16 bits, as the generator's ``--bits 8`` does), else the file's own depth."""
    if image.dtype == np.uint16 and not np.any(image % 257):
        return 8
    return bit_depth(image)


def measure_folder(root, *collectors) -> tuple[list, dict]:
    """Block measurements of every scene of an ``inputL/ inputR/ inputC/ target/`` folder and each scene's
    left/right brightness ratio per vertical strip. Each scene also goes to every collector's
    ``add_scene(name, views, measurements, bits)`` (``KernelGroups``, ``CompressionEstimates``): every image is
    read once."""
    measurements, balance = [], {}
    for name in list_png_names(f'{root}/{VIEW_FOLDERS["left"]}'):
        images = {view: read_image(f'{root}/{folder}/{name}') for view, folder in VIEW_FOLDERS.items()}
        views = {view: to_float(image) for view, image in images.items()}
        scene = measure_scene(name, views)
        measurements += scene
        balance[name] = view_balance(views)
        for collector in collectors:
            collector.add_scene(name, views, scene, stored_bits(images['left']))
    return measurements, balance


def radius_bin_text(low: float, high: float) -> str:
    """``'3-6 px'``; an open-ended bin reads ``'>= 10 px'``."""
    return f'>= {low:g} px' if np.isinf(high) else f'{low:g}-{high:g} px'


def share_text(low: float, high: float, share: float) -> str:
    """``'3-6 px 39 %'``; an open-ended bin reads ``'>= 10 px 22 %'``."""
    return f'{radius_bin_text(low, high)} {100 * share:.0f} %'


def report_lines(measurements: list, balance: dict) -> list:
    """What ``scripts/measure_dp_statistics.py`` prints: the slope, the median shift per radius, the imbalance."""
    fit = shift_against_blur(measurements)
    signed = np.mean([m.shift_px for m in measurements if m.blur_radius_px >= 1.0] or [0.0])
    ratios = np.concatenate(list(balance.values()))
    shares = radius_shares(measurements)
    lines = [
        f'{fit["blocks"]} textured blocks; view shift per px of disc radius (fit through 0): {fit["slope"]:.3f}; '
        f'mean signed shift of blurred blocks {signed:+.2f} px (positive: right view content further right)',
        f'left/right brightness ratio per strip: {ratios.min():.3f} to {ratios.max():.3f}',
        'blocks per disc radius: ' + ', '.join(share_text(low, high, share) for (low, high), share in shares.items()),
        'blurred blocks (radius >= 1 px) per side of the focal plane: '
        + ', '.join(f'{side} {100 * share:.0f} %' for side, share in blurred_side_shares(measurements).items()),
        'radius px | median |shift| px | blocks',
    ]
    lines += [f'{radius:9.1f} | {shift:16.2f} | {count}' for radius, (shift, count) in fit['by_radius'].items()]
    return lines


# ------------------------------------------------------------------------------------------------------ PSF shape

KERNEL_HALF_WIDTH = 14
FIT_RADII = tuple(float(r) for r in np.arange(1.0, 12.01, 0.5))
SHAPE_GRID = {
    'rim_floor': (0.5, 0.75, 1.0, 1.25, 1.5),
    'sigma_per_radius': (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    'ramp_strength': (0.5, 0.6, 0.7, 0.8),
}


@dataclass
class KernelSums:
    """Normal equations of the least-squares kernels from the target to each view, summed over blocks."""

    gram: np.ndarray = 0.0
    moments: dict = field(default_factory=lambda: {'left': 0.0, 'right': 0.0})
    blocks: int = 0


def add_block(sums: KernelSums, grey_views: dict, top: int, x0: int, size: int, half: int = KERNEL_HALF_WIDTH):
    """Add one block: every pixel of the views is a convolution of the target's (2 half + 1)^2 neighbourhood plus an
    offset. Blocks too close to the border for the neighbourhood are skipped."""
    window = grey_views['target'][top - half : top + size + half, x0 - half : x0 + size + half]
    if top < half or x0 < half or window.shape != (size + 2 * half, size + 2 * half):
        return
    width = 2 * half + 1
    design = sliding_window_view(window, (width, width)).reshape(-1, width * width)[:, ::-1]
    design = np.concatenate([design, np.ones((design.shape[0], 1))], axis=1)
    sums.gram = sums.gram + design.T @ design
    for view in sums.moments:
        sums.moments[view] = sums.moments[view] + design.T @ grey_views[view][top : top + size, x0 : x0 + size].ravel()
    sums.blocks += 1


def gradient_penalty(width: int) -> np.ndarray:
    """Quadratic form of the squared differences between horizontally and vertically adjacent kernel taps (the
    offset, the last unknown, is not penalised)."""
    index = np.arange(width * width).reshape(width, width)
    first = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    second = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    differences = np.zeros((first.size, width * width + 1))
    rows = np.arange(first.size)
    differences[rows, first] = -1.0
    differences[rows, second] = 1.0
    return differences.T @ differences


def solve_kernels(sums: KernelSums, smoothness: float = 3e-4) -> dict:
    """Unit-sum kernel per view, with a gradient penalty scaled to the data (``smoothness`` times the mean diagonal
    of the normal equations)."""
    width = int(round(np.sqrt(sums.gram.shape[0] - 1)))
    weight = smoothness * np.trace(sums.gram) / sums.gram.shape[0]
    system = sums.gram + weight * gradient_penalty(width) + 1e-6 * weight * np.eye(sums.gram.shape[0])
    kernels = {}
    for view, moment in sums.moments.items():
        kernel = np.linalg.solve(system, moment)[:-1].reshape(width, width)
        kernels[view] = kernel / kernel.sum()
    return kernels


def centred(kernel: np.ndarray, width: int) -> np.ndarray:
    """``kernel`` cropped or zero-padded to ``width`` x ``width`` about its centre."""
    out = np.zeros((width, width))
    half, own = width // 2, kernel.shape[0] // 2
    reach = min(half, own)
    out[half - reach : half + reach + 1, half - reach : half + reach + 1] = kernel[
        own - reach : own + reach + 1, own - reach : own + reach + 1
    ]
    return out


def shape_error(kernels: dict, model: PsfModel, radii) -> tuple[float, float]:
    """Smallest squared difference between the measured left/right kernels (behind the focal plane) and the
    model's PSFs over ``radii``, relative to the kernels' energy, and the radius that gave it."""
    width = kernels['left'].shape[0]
    energy = sum(float((kernels[view] ** 2).sum()) for view in ('left', 'right'))
    best = (np.inf, 0.0)
    for radius in radii:
        left, right, _ = dual_pixel_psfs(float(radius), model)
        error = float(((centred(left, width) - kernels['left']) ** 2).sum())
        error += float(((centred(right, width) - kernels['right']) ** 2).sum())
        best = min(best, (error / energy, float(radius)))
    return best


def fit_psf_shape(kernel_groups: list, grid: dict = SHAPE_GRID, radii=FIT_RADII) -> list:
    """Every shape of ``grid`` (rim floor, softening per px of radius, ramp strength; radius free per group) ranked
    by its mean relative error over the groups' kernels: a list of (error, PsfModel), best first."""
    ranked = []
    for values in itertools.product(*grid.values()):
        model = PsfModel(**dict(zip(grid, values, strict=True)))
        errors = [shape_error(kernels, model, radii)[0] for kernels in kernel_groups]
        ranked.append((float(np.mean(errors)), model))
    return sorted(ranked, key=lambda item: item[0])


@dataclass
class KernelGroups:
    """Kernel sums per blur group: the blocks behind the focal plane (positive shift) whose disc radius falls in the
    same ``group_width`` px group, for radii from 2 px to ``max_radius``."""

    group_width: float = 1.5
    max_radius: float = 9.0
    sums: dict = field(default_factory=dict)
    radii: dict = field(default_factory=dict)

    def add_scene(self, name: str, views: dict, measurements: list, bits: int, block: int = 48) -> None:
        """Add the scene's qualifying blocks (``views``: float RGB ``left``, ``right``, ``target``)."""
        grey_views = {view: grey(views[view]) for view in ('left', 'right', 'target')}
        for m in measurements:
            if m.match_error <= 0.2 and m.shift_px > 0.3 and 2.0 <= m.blur_radius_px < self.max_radius:
                group = int(m.blur_radius_px // self.group_width)
                add_block(self.sums.setdefault(group, KernelSums()), grey_views, m.y, m.x, block)
                self.radii.setdefault(group, []).append(m.blur_radius_px)

    def kernels(self, min_blocks: int = 12) -> dict:
        """{group's median disc radius: (kernels, block count)} for the groups with at least ``min_blocks`` blocks,
        by radius."""
        result = {
            float(np.median(self.radii[group])): (solve_kernels(sums), sums.blocks)
            for group, sums in self.sums.items()
            if sums.blocks >= min_blocks
        }
        return dict(sorted(result.items()))


def psf_shape_lines(kernel_groups: KernelGroups, reference: PsfModel | None = None) -> list:
    """What ``scripts/measure_dp_statistics.py --psf-shape`` prints: the best-fitting PSF shapes and, for
    comparison, the error of ``reference``."""
    groups = kernel_groups.kernels()
    if not groups:
        return ['PSF shape: too few blurred blocks behind the focal plane to measure']
    kernels = [item[0] for item in groups.values()]
    ranked = fit_psf_shape(kernels)
    lines = [
        'PSF shape from ' + ', '.join(f'{count} blocks at disc radius {r:.1f}' for r, (_, count) in groups.items()),
        'relative error | rim floor | softening sigma per px of radius | ramp strength',
    ]
    lines += [
        f'{error:14.4f} | {m.rim_floor:9.2f} | {m.sigma_per_radius:33.2f} | {m.ramp_strength:.2f}'
        for error, m in ranked[:5]
    ]
    if reference is not None:
        error = np.mean([shape_error(k, reference, FIT_RADII)[0] for k in kernels])
        lines.append(
            f'{error:14.4f} | {reference.rim_floor:9.2f} | {reference.sigma_per_radius:33.2f} | '
            f'{reference.ramp_strength:.2f}   (reference)'
        )
    return lines


# ---------------------------------------------------------------------------------------------------- compression


@dataclass(frozen=True)
class Codec:
    """A codec the compression estimate tries: what its setting is called, the ``quantise_and_compress`` argument
    that sets it, and the settings tried."""

    label: str
    argument: str
    settings: tuple


CODECS = {
    'jpeg': Codec('JPEG quality', 'jpeg_quality', tuple(range(10, 100, 5))),
    'h264': Codec('H.264 CRF', 'h264_crf', tuple(range(16, 52, 3))),
}


def consistency_error(left: np.ndarray, right: np.ndarray, combined: np.ndarray) -> np.ndarray:
    """Per-pixel squared difference between the mean of the two views and the combined view (mean over colour).
    Without loss the combined view is their mean, so what separates them is what each file lost on its own:
    quantisation and compression."""
    return np.mean(((left + right) / 2.0 - np.asarray(combined, dtype=np.float64)) ** 2, axis=2)


def block_means(error: np.ndarray, blocks: list, block: int) -> np.ndarray:
    """The mean of a squared-error map in each of the given ``(y, x)`` blocks."""
    return np.array([error[y : y + block, x : x + block].mean() for y, x in blocks])


def psnr_of_mse(mse: float) -> float:
    """PSNR (dB) of a mean squared error of values in [0, 1]."""
    return float(10.0 * np.log10(1.0 / max(mse, 1e-12)))


def blocks_psnr(error: np.ndarray, blocks: list, block: int) -> float:
    """PSNR (dB) of a squared-error map over the given ``(y, x)`` blocks together."""
    return psnr_of_mse(block_means(error, blocks, block).mean())


def rendered_errors(target: np.ndarray, radius: float, bits: int, codec: Codec, settings) -> dict:
    """{setting: :func:`consistency_error` map} of ``target`` rendered by the generator's PSFs at one disc radius
    (behind focus, ramp strength 0.7), the three views stored at ``bits`` and compressed by ``codec`` at each
    setting (None: not compressed)."""
    blurred = [convolve(target, psf) for psf in dual_pixel_psfs(float(radius), PsfModel(ramp_strength=0.7))]
    return {
        setting: consistency_error(*(quantise_and_compress(v, bits, **{codec.argument: setting}) for v in blurred))
        for setting in settings
    }


def equivalent_setting(consistency: float, curve: dict) -> float | str:
    """The codec setting whose ``curve`` value ({setting: consistency}) equals ``consistency``, interpolated
    between the settings ordered by their consistency; beyond the curve's ends, a bound (text)."""
    settings, values = zip(*sorted(curve.items(), key=lambda item: item[1]), strict=True)
    if consistency < values[0]:
        return f'lossier than {settings[0]}'
    if consistency > values[-1]:
        return f'less lossy than {settings[-1]}'
    return float(np.interp(consistency, values, settings))


def setting_text(setting: float | str | None) -> str:
    """An estimated setting as printed: a whole number, a bound, or why there is none."""
    if setting is None:
        return '- (not 8-bit values)'
    return f'{setting:.0f}' if isinstance(setting, float) else setting


@dataclass
class CompressionEstimates:
    """Per scene: how consistent the views are with the combined view in its measured blocks and, for 8-bit
    inputs, the ``codec`` setting ('jpeg' quality or 'h264' CRF) at which the generator's rendering of the scene's
    own target is as consistent (each block rendered at its own disc radius, rounded to 1 px)."""

    codec: str = 'jpeg'
    block: int = 48
    scenes: dict = field(default_factory=dict)

    def add_scene(self, name: str, views: dict, measurements: list, bits: int) -> None:
        """Measure one scene (``views``: float RGB ``left``, ``right``, ``combined``, ``target``)."""
        if not measurements:
            self.scenes[name] = (None, None)
            return
        blocks = [(m.y, m.x) for m in measurements]
        error = consistency_error(views['left'], views['right'], views['combined'])
        consistency = blocks_psnr(error, blocks, self.block)
        if bits != 8:
            self.scenes[name] = (consistency, None)
            return
        by_radius = {}
        for m in measurements:
            by_radius.setdefault(float(np.round(m.blur_radius_px)), []).append((m.y, m.x))
        codec = CODECS[self.codec]
        rendered = {r: rendered_errors(views['target'], r, bits, codec, codec.settings) for r in by_radius}
        curve = {  # each block as the rendering at its own radius has it
            setting: psnr_of_mse(
                np.concatenate(
                    [block_means(rendered[r][setting], rb, self.block) for r, rb in by_radius.items()]
                ).mean()
            )
            for setting in codec.settings
        }
        self.scenes[name] = (consistency, equivalent_setting(consistency, curve))

    def lines(self) -> list:
        """What ``scripts/measure_dp_statistics.py --compression`` prints, one line per scene and the median."""
        label = CODECS[self.codec].label
        lines = [
            f'scene | PSNR of the mean of the views against the combined view, textured blocks (dB) | '
            f'{label} of the same consistency'
        ]
        for name, (consistency, setting) in self.scenes.items():
            if consistency is None:
                lines.append(f'{name} | - | - (no textured blocks)')
            else:
                lines.append(f'{name} | {consistency:.2f} | {setting_text(setting)}')
        numbers = [q for _, q in self.scenes.values() if isinstance(q, float)]
        if numbers:
            lines.append(
                f'median equivalent {label} over {len(numbers)} scenes: {np.median(numbers):.0f} '
                f'(scenes {min(numbers):.0f} to {max(numbers):.0f})'
            )
        return lines
