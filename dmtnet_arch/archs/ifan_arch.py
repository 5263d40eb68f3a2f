"""IFAN, the Iterative Filter Adaptive Network (Lee et al., CVPR 2021), as released in codeslake/IFAN.

Single-image defocus deblurring of the combined dual-pixel view. Module names follow the released ``Network`` so that
its checkpoint loads strictly; ``docs/peers.md`` (section IFAN) records the facts taken from the release and the
choices made here.
"""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from dmtnet_arch.archs.arch_util import check_dual_pixel_input, pad_to_multiple
from dmtnet_arch.utils.checkpoint import record_constructor_options

NEGATIVE_SLOPE = 0.1  # every LeakyReLU of the release
DOWNSCALE = 8  # three stride-2 stages: features, filters and the disparity map are at 1/8 of the image
RELEASED_WRAPPERS = ('module.', '')  # the release saved its DataParallel wrapper: keys start with module.Network.


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, act: bool = True) -> nn.Module:
    """The release's ``conv``: a same-padded convolution, followed by LeakyReLU(0.1) unless ``act`` is False."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2)
    return nn.Sequential(layer, nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)) if act else layer


def upconv(in_channels: int, out_channels: int) -> nn.Sequential:
    """The release's ``upconv``: a 4x4 stride-2 transposed convolution (x2 up-sampling), then LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
    )


class ResnetBlock(nn.Module):
    """The release's ``resnet_block``: ``res_num`` x (conv, LReLU, conv, + input, LReLU); a skip over all when > 1."""

    def __init__(self, channels: int, kernel_size: int = 3, res_num: int = 1):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.stem = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, kernel_size, padding=padding),
                nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
                nn.Conv2d(channels, channels, kernel_size, padding=padding),
            )
            for _ in range(res_num)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_input = x
        for unit in self.stem:
            x = F.leaky_relu(x + unit(x), NEGATIVE_SLOPE)
        return x + block_input if len(self.stem) > 1 else x


def separable_filter(x: torch.Tensor, vertical: torch.Tensor, horizontal: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel separable filtering (the release's SAC): a vertical then a horizontal 1-D pass.

    ``x`` is (N, C, H, W); each kernel is (N, C * k, H, W), the k taps of channel c at channels c * k ... c * k + k - 1.
    The borders are replicated (k // 2 pixels), as in the release.
    """
    n, channels, height, width = x.shape
    size = vertical.shape[1] // channels
    pad = size // 2
    vertical = vertical.view(n, channels, size, height, width)
    horizontal = horizontal.view(n, channels, size, height, width)
    padded = F.pad(x, (0, 0, pad, pad), mode='replicate')
    x = sum(padded[:, :, tap : tap + height] * vertical[:, :, tap] for tap in range(size))
    padded = F.pad(x, (pad, pad, 0, 0), mode='replicate')
    return sum(padded[..., tap : tap + width] * horizontal[:, :, tap] for tap in range(size))


def iterative_adaptive_convolution(
    features: torch.Tensor,
    filters: torch.Tensor,
    iterations: int,
    filter_size: int,
    reuse_first_kernel: bool = True,
    activate_last: bool = True,
) -> torch.Tensor:
    """IAC (paper eq. 2-3, the release's ``IAC``): ``iterations`` x (separable filtering + bias, LeakyReLU(0.1)).

    ``filters`` holds, per pixel, ``iterations`` pairs of 1-D kernels (C * k channels each), then ``iterations``
    biases (C channels each). ``reuse_first_kernel`` reproduces the release, which filters the horizontal pass with
    the first (vertical) kernel too and never uses the second; False uses the second kernel as the paper intends.
    """
    channels = features.shape[1]
    kernel_channels = 2 * channels * filter_size
    expected = iterations * (kernel_channels + channels)
    if filters.shape[1] != expected:
        raise ValueError(
            f'IAC: {iterations} iterations of {filter_size}-tap kernels on {channels} channels need {expected} filter '
            f'channels, got {filters.shape[1]}'
        )
    kernels, biases = filters.split([iterations * kernel_channels, iterations * channels], dim=1)
    pairs = zip(kernels.split(kernel_channels, 1), biases.split(channels, 1), strict=True)
    for index, (kernel, bias) in enumerate(pairs):
        first, second = kernel.chunk(2, dim=1)
        features = separable_filter(features, first, first if reuse_first_kernel else second) + bias
        if activate_last or index < iterations - 1:
            features = F.leaky_relu(features, NEGATIVE_SLOPE)
    return features


def warp_horizontally(image: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The release's ``DPD``: sample ``image`` at x + disparity (pixels, channel 0), bilinear, zeros outside."""
    height, width = image.shape[-2:]
    xs = torch.linspace(-1.0, 1.0, width, device=image.device, dtype=image.dtype).view(1, 1, width)
    ys = torch.linspace(-1.0, 1.0, height, device=image.device, dtype=image.dtype).view(1, height, 1)
    grid_x = xs + disparity[:, 0] * (2.0 / max(width - 1, 1))
    grid = torch.stack([grid_x, ys.expand_as(grid_x)], dim=-1)
    return F.grid_sample(image, grid, mode='bilinear', padding_mode='zeros', align_corners=True)


def initialise(module: nn.Module, gain: float):
    """The release's training initialisation: Xavier-uniform convolution weights with ``gain``, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(layer.weight, gain=gain)
            nn.init.zeros_(layer.bias)


def released_keys_to_local(state_dict: dict, prefix: str, network: str, dropped: tuple[str, ...]):
    """Rename ``[module.]<network>.<key>`` to ``<key>`` and delete ``[module.]<dropped>.*`` keys, in place."""
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        for wrapper in RELEASED_WRAPPERS:
            if rest.startswith(f'{wrapper}{network}.'):
                state_dict[prefix + rest[len(wrapper) + len(network) + 1 :]] = state_dict.pop(key)
                break
            if any(rest.startswith(f'{wrapper}{name}.') for name in dropped):
                del state_dict[key]
                break


@ARCH_REGISTRY.register()
@record_constructor_options
class IFAN(nn.Module):
    """IFAN (N, 3, H, W) combined view in [0, 1] -> (N, 3, H, W) sharp image; clipped to [0, 1] in eval mode.

    Defaults are the released model (``configs/config_IFAN.py``): ``channels`` = ch 32, ``kernel_size`` = ks 3,
    ``res_num`` 2, ``filter_size`` = Fs 3, ``iterations`` = N 17. Any H and W are accepted: the input is padded
    (edge-replicated, bottom and right) to a multiple of 8 and the output cropped back; the release crops instead.
    ``reuse_first_kernel`` (default True, the release and its weights): see :func:`iterative_adaptive_convolution`.

    Loads the released ``IFAN.pytorch`` strictly: ``module.Network.*`` keys are renamed and the training-only
    ``module.reblurNet.*`` keys dropped by a state-dict pre-hook. With ``right`` (training), ``forward`` returns a dict:
    ``result`` (not clipped), ``filters`` (the predicted IAC filters) and ``right_disparity`` (the disparity map the
    estimator gives for the right view, at 1/8 scale) for IFAN's disparity and reblurring losses.

    Args:
        channels (int): Width of the first encoder level (the release's ``ch``); the deeper levels have 2x and 4x.
            Default: 32.
        kernel_size (int): Kernel size of the convolutions (``ks``). Default: 3.
        res_num (int): Residual blocks per stage (``res_num``). Default: 2.
        filter_size (int): Size of each predicted separable IAC filter (``Fs``). Default: 3.
        iterations (int): IAC iterations (``N``). Default: 17.
        reuse_first_kernel (bool): Filter both passes with the first kernel, as the release does. Default: True.
        init_gain (float): Xavier gain of the release's training initialisation. Default: 1.0.
        filter_init_gain (float): That gain for the filter predictor ``F``. Default: 1.5.
    """

    in_channels = 3  # the combined view
    size_multiple = DOWNSCALE

    def __init__(
        self,
        channels: int = 32,
        kernel_size: int = 3,
        res_num: int = 2,
        filter_size: int = 3,
        iterations: int = 17,
        reuse_first_kernel: bool = True,
        init_gain: float = 1.0,
        filter_init_gain: float = 1.5,
    ):
        super().__init__()
        ch1, ch2, ch3 = channels, channels * 2, channels * 4
        ch4 = ch3
        ks = kernel_size
        self.feature_channels = ch4
        self.kernel_size, self.res_num = kernel_size, res_num
        self.filter_size = filter_size
        self.iterations = iterations
        self.reuse_first_kernel = reuse_first_kernel
        self.filter_channels = iterations * (ch4 * filter_size * 2) + iterations * ch4

        # feature extractor
        self.conv1_1, self.conv1_2, self.conv1_3 = conv(3, ch1, ks), conv(ch1, ch1, ks), conv(ch1, ch1, ks)
        self.conv2_1, self.conv2_2, self.conv2_3 = conv(ch1, ch2, ks, 2), conv(ch2, ch2, ks), conv(ch2, ch2, ks)
        self.conv3_1, self.conv3_2, self.conv3_3 = conv(ch2, ch3, ks, 2), conv(ch3, ch3, ks), conv(ch3, ch3, ks)
        self.conv4_1, self.conv4_2, self.conv4_3 = conv(ch3, ch4, ks, 2), conv(ch4, ch4, ks), conv(ch4, ch4, ks)
        # filter predictor, first half: filter-encoder features joined with the disparity features
        self.conv4_4 = nn.Sequential(
            conv(2 * ch4, ch4, ks), ResnetBlock(ch4, ks, res_num), ResnetBlock(ch4, ks, res_num), conv(ch4, ch4, ks)
        )
        # reconstructor
        self.conv_res = nn.Sequential(conv(ch4, ch4, ks), ResnetBlock(ch4, ks, 3), conv(ch4, ch4, ks))
        self.upconv3_u, self.upconv3_1, self.upconv3_2 = upconv(ch4, ch3), ResnetBlock(ch3, ks), ResnetBlock(ch3, ks)
        self.upconv2_u, self.upconv2_1, self.upconv2_2 = upconv(ch3, ch2), ResnetBlock(ch2, ks), ResnetBlock(ch2, ks)
        self.upconv1_u, self.upconv1_1, self.upconv1_2 = upconv(ch2, ch1), ResnetBlock(ch1, ks), ResnetBlock(ch1, ks)
        self.out_res = conv(ch1, 3, ks)  # with LeakyReLU, as released, before the global residual
        # filter encoder
        self.kconv1_1, self.kconv1_2, self.kconv1_3 = conv(3, ch1, ks), conv(ch1, ch1, ks), conv(ch1, ch1, ks)
        self.kconv2_1, self.kconv2_2, self.kconv2_3 = conv(ch1, ch2, ks, 2), conv(ch2, ch2, ks), conv(ch2, ch2, ks)
        self.kconv3_1, self.kconv3_2, self.kconv3_3 = conv(ch2, ch3, ks, 2), conv(ch3, ch3, ks), conv(ch3, ch3, ks)
        self.kconv4_1, self.kconv4_2, self.kconv4_3 = conv(ch3, ch4, ks, 2), conv(ch4, ch4, ks), conv(ch4, ch4, ks)
        # disparity map estimator (DME)
        self.DME = nn.Sequential(
            conv(ch4, ch4, ks), ResnetBlock(ch4, ks, res_num), ResnetBlock(ch4, ks, res_num), conv(ch4, 1, 3, act=False)
        )
        # filter predictor, second half: disparity features, then the per-pixel filters
        self.conv_DME = conv(1, ch4, 3)
        self.F = nn.Sequential(
            conv(ch4, ch4, ks),
            ResnetBlock(ch4, ks, res_num),
            ResnetBlock(ch4, ks, res_num),
            conv(ch4, self.filter_channels, 1, act=False),
        )
        initialise(self, init_gain)
        initialise(self.F, filter_init_gain)
        self.register_load_state_dict_pre_hook(self.accept_released_keys)

    @staticmethod
    def accept_released_keys(module, state_dict, prefix, *args):
        """Load-state-dict pre-hook: the released file's ``module.Network.*`` and ``module.reblurNet.*`` keys."""
        released_keys_to_local(state_dict, prefix, 'Network', dropped=('reblurNet',))

    def extract_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature extractor: features at 1, 1/2, 1/4 and 1/8 scale (the first three are reconstructor skips)."""
        f1 = self.conv1_3(self.conv1_2(self.conv1_1(x)))
        f2 = self.conv2_3(self.conv2_2(self.conv2_1(f1)))
        f3 = self.conv3_3(self.conv3_2(self.conv3_1(f2)))
        return [f1, f2, f3, self.conv4_3(self.conv4_2(self.conv4_1(f3)))]

    def encode_filters(self, x: torch.Tensor) -> torch.Tensor:
        """Filter encoder: 1/8-scale features from which the disparity map and the filters are predicted."""
        f = self.kconv1_3(self.kconv1_2(self.kconv1_1(x)))
        f = self.kconv2_3(self.kconv2_2(self.kconv2_1(f)))
        f = self.kconv3_3(self.kconv3_2(self.kconv3_1(f)))
        return self.kconv4_3(self.kconv4_2(self.kconv4_1(f)))

    def predict_filters(self, x: torch.Tensor) -> torch.Tensor:
        """Filter encoder, disparity map estimator and filter predictor: the per-pixel IAC filters at 1/8 scale."""
        encoded = self.encode_filters(x)
        disparity_features = self.conv_DME(self.DME(encoded))
        return self.F(self.conv4_4(torch.cat([encoded, disparity_features], dim=1)))

    def reconstruct(self, features: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Reconstructor: the filtered 1/8-scale features up to full resolution, plus the input (global residual)."""
        f1, f2, f3 = skips
        f = self.conv_res(features)
        f = self.upconv3_2(self.upconv3_1(self.upconv3_u(f) + f3))
        f = self.upconv2_2(self.upconv2_1(self.upconv2_u(f) + f2))
        f = self.upconv1_2(self.upconv1_1(self.upconv1_u(f) + f1))
        return self.out_res(f) + x

    def deblur(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, IAC filters) of an input whose sides are multiples of 8."""
        *skips, features = self.extract_features(x)
        filters = self.predict_filters(x)
        filtered = iterative_adaptive_convolution(
            features, filters, self.iterations, self.filter_size, self.reuse_first_kernel
        )
        return self.reconstruct(filtered, skips, x), filters

    def forward(self, x: torch.Tensor, right: torch.Tensor | None = None):
        check_dual_pixel_input(x, self.in_channels, 'IFAN')
        height, width = x.shape[-2:]
        if right is not None:
            return self.training_outputs(x, right)
        padded = pad_to_multiple(x, self.size_multiple, mode='replicate')
        out = self.deblur(padded)[0][..., :height, :width]
        return out if self.training else out.clamp(0.0, 1.0)

    def training_outputs(self, x: torch.Tensor, right: torch.Tensor) -> dict:
        """What IFAN's losses need (see the class docstring); the crops' sides must be multiples of 8."""
        if x.shape[-2] % DOWNSCALE or x.shape[-1] % DOWNSCALE or right.shape != x.shape:
            raise ValueError(
                f'IFAN trains on combined and right views of the same size, sides multiples of {DOWNSCALE}; got '
                f'{tuple(x.shape)} and {tuple(right.shape)} (datasets: train: gt_size)'
            )
        result, filters = self.deblur(x)
        return {'result': result, 'filters': filters, 'right_disparity': self.DME(self.encode_filters(right))}


class IFANReblurNet(nn.Module):
    """IFAN's training-only reblurring network (the release's ``RBN``, paper section 3.3).

    Predicts per-pixel reblurring filters from the deblurring filters and applies them with an IAC (3 channels, no
    activation after the last iteration) to the 1/8-scale sharp target, plus a global residual.
    """

    def __init__(
        self,
        filter_channels: int = 17 * (128 * 3 * 2) + 17 * 128,
        channels: int = 128,
        iterations: int = 17,  # RBF_num of the released config
        filter_size: int = 3,  # RBFs
        kernel_size: int = 3,
        res_num: int = 2,
        reuse_first_kernel: bool = True,
        init_gain: float = 1.0,
    ):
        super().__init__()
        self.filter_size = filter_size
        self.iterations = iterations
        self.reuse_first_kernel = reuse_first_kernel
        self.RBF = nn.Sequential(
            conv(filter_channels, channels, kernel_size),
            ResnetBlock(channels, kernel_size, res_num),
            ResnetBlock(channels, kernel_size, res_num),
            conv(channels, iterations * (3 * filter_size * 2) + iterations * 3, 3, act=False),
        )
        initialise(self, init_gain)
        self.register_load_state_dict_pre_hook(self.accept_released_keys)

    @classmethod
    def for_network(cls, ifan: IFAN, **kwargs) -> 'IFANReblurNet':
        """The reblurring network the release trains beside ``ifan`` (same widths, blocks and IAC behaviour)."""
        shared = {
            'kernel_size': ifan.kernel_size,
            'res_num': ifan.res_num,
            'reuse_first_kernel': ifan.reuse_first_kernel,
        }
        return cls(filter_channels=ifan.filter_channels, channels=ifan.feature_channels, **shared, **kwargs)

    @staticmethod
    def accept_released_keys(module, state_dict, prefix, *args):
        """Load-state-dict pre-hook: the released file's ``module.reblurNet.*`` keys (``module.Network.*`` dropped)."""
        released_keys_to_local(state_dict, prefix, 'reblurNet', dropped=('Network',))

    def forward(self, sharp: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
        # nearest down-sampling (the release's default F.interpolate mode): the top-left pixel of each 8 x 8 block
        sharp = F.interpolate(sharp, scale_factor=1 / DOWNSCALE, mode='nearest')
        reblurred = iterative_adaptive_convolution(
            sharp, self.RBF(filters), self.iterations, self.filter_size, self.reuse_first_kernel, activate_last=False
        )
        return reblurred + sharp
