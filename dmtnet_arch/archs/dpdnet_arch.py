"""DPDNet (Abuolaim and Brown, ECCV 2020): the dual-pixel defocus deblurring U-Net of the official Keras code.

Structure and operation order follow ``DPDNet/model.py`` of github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel
(the ``l5_s512_f0.7_d0.4`` model); the official Keras weights convert with ``scripts/convert_dpdnet_keras.py``
(:mod:`dmtnet_arch.tools.convert_dpdnet_keras`). ``docs/peers.md`` says what is faithful and what was added.
"""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from dmtnet_arch.archs.arch_util import check_dual_pixel_input, pad_to_multiple
from dmtnet_arch.utils.checkpoint import record_constructor_options

NUM_LEVELS = 5
DROPOUT_LEVELS = (3, 4)  # 0-based: dropout after encoder levels 4 and 5 (the level-4 skip is taken after it too)
TRUNCATED_NORMAL_STD = 0.87962566103423978  # standard deviation of a unit normal truncated at +-2 (Keras' factor)
HEAD_CHANNELS = 3  # the official 3 x 3 head conv has 3 outputs whatever the number of output channels


class DoubleConv(nn.Module):
    """Two 3 x 3 convolutions with ReLU: one U-Net level (Keras ``padding='same'``, symmetric for odd kernels)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class UpConv(nn.Module):
    """Keras ``UpSampling2D`` (nearest, x2), then a 2 x 2 convolution with ReLU and TensorFlow "same" padding: the
    single padding row and column go at the bottom and the right."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode='nearest')
        return F.relu(self.conv(F.pad(x, (0, 1, 0, 1))))


class DecoderLevel(nn.Module):
    """Up-convolution, concatenation [skip, up-sampled] on channels, then two 3 x 3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = UpConv(in_channels, out_channels)
        self.convs = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([skip, self.up(x)], dim=1))


class Head(nn.Module):
    """3 x 3 convolution to 3 channels with ReLU, then a 1 x 1 convolution with sigmoid: the output is in (0, 1)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, HEAD_CHANNELS, 3, padding=1)
        self.out = nn.Conv2d(HEAD_CHANNELS, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(F.relu(self.conv(x))))


@ARCH_REGISTRY.register()
@record_constructor_options
class DPDNet(nn.Module):
    """DPDNet: (N, 6, H, W) left then right view in [0, 1], RGB -> (N, 3, H, W) sharp image in (0, 1).

    Five encoder levels of ``base_channels`` x (1, 2, 4, 8, 16) channels with 2 x 2 max pooling between them, dropout
    ``dropout_rate`` after levels 4 and 5, four decoder levels, every convolution with a bias. The official model is
    ``base_channels: 64``, ``dropout_rate: 0.4``. Any H and W are accepted: the input is padded to a multiple of 16
    (four poolings) and cropped back, which leaves the DPDD size (1680 x 1120) untouched.
    """

    size_multiple = 2 ** (NUM_LEVELS - 1)

    def __init__(self, in_channels: int = 6, out_channels: int = 3, base_channels: int = 64, dropout_rate: float = 0.4):
        super().__init__()
        self.in_channels = in_channels
        widths = [base_channels * 2**level for level in range(NUM_LEVELS)]
        self.encoder = nn.ModuleList(
            DoubleConv(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.dropout = nn.Dropout(dropout_rate)
        self.decoder = nn.ModuleList(
            DecoderLevel(widths[level + 1], widths[level]) for level in reversed(range(NUM_LEVELS - 1))
        )
        self.head = Head(widths[0], out_channels)
        self.init_keras_weights()

    def init_keras_weights(self):
        """The official initialisation: he_normal kernels (normal truncated at two standard deviations, rescaled to a
        standard deviation of sqrt(2 / fan_in)), Keras' default glorot_uniform for the last 1 x 1 conv, zero biases."""
        for conv in self.keras_layer_order():
            if conv is self.head.out:
                nn.init.xavier_uniform_(conv.weight)
            else:
                fan_in = conv.weight[0].numel()
                std = (2 / fan_in) ** 0.5 / TRUNCATED_NORMAL_STD
                nn.init.trunc_normal_(conv.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(conv.bias)

    def keras_layer_order(self) -> list[nn.Conv2d]:
        """Every convolution in the order the official ``unet()`` creates its Keras ``Conv2D`` layers (conv2d_1 ...
        conv2d_24): encoder levels, then each decoder level's up-convolution and two convolutions, then the head."""
        convs = [conv for level in self.encoder for conv in (level.conv1, level.conv2)]
        convs += [conv for level in self.decoder for conv in (level.up.conv, level.convs.conv1, level.convs.conv2)]
        return [*convs, self.head.conv, self.head.out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_dual_pixel_input(x, self.in_channels, 'DPDNet')
        h, w = x.shape[-2:]
        features = pad_to_multiple(x, self.size_multiple)
        skips = []
        for level, block in enumerate(self.encoder):
            features = block(features if level == 0 else F.max_pool2d(features, 2))
            if level in DROPOUT_LEVELS:
                features = self.dropout(features)
            skips.append(features)
        features = skips.pop()
        for level in self.decoder:
            features = level(features, skips.pop())
        return self.head(features)[..., :h, :w]
