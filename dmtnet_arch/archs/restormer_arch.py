"""Restormer (Zamir et al., CVPR 2022) in its dual-pixel defocus deblurring configuration.

Module and parameter names and the order of every operation follow the official release
(github.com/swz30/Restormer, ``basicsr/models/archs/restormer_arch.py``), so its ``dual_pixel_defocus_deblurring.pth``
loads strictly and computes the official outputs. ``docs/peers.md`` says what is faithful and what was added.
"""

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from dmtnet_arch.archs.arch_util import check_dual_pixel_input, pad_to_multiple
from dmtnet_arch.utils.checkpoint import record_constructor_options

LAYER_NORM_TYPES = ('WithBias', 'BiasFree')
LAYER_NORM_EPS = 1e-5
NUM_LEVELS = 4


class BiasFreeLayerNorm(nn.Module):
    """Restormer's bias-free layer norm over the last axis: x / sqrt(var + eps) * weight, the mean is kept."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(variance + LAYER_NORM_EPS) * self.weight


class LayerNorm(nn.Module):
    """Layer norm over the channels of a (N, C, H, W) map, at every pixel (Restormer's ``LayerNorm``)."""

    def __init__(self, dim: int, layer_norm_type: str):
        super().__init__()
        if layer_norm_type == 'BiasFree':
            self.body = BiasFreeLayerNorm(dim)
        else:  # WithBias: (x - mean) / sqrt(var + eps) * weight + bias, which is torch's LayerNorm
            self.body = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention (paper eq. 2): channel-by-channel attention of L2-normalised q and k
    per head, scaled by a learned temperature per head."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # channels are [q | k | v], each split into heads of c / num_heads consecutive channels
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(n, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attention = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attention @ v).reshape(n, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network (paper eq. 3): GELU(branch 1) * branch 2 of a depth-wise 3 x 3 conv."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """Restormer's transformer block: X = X + MDTA(LN(X)); X = X + GDFN(LN(X))."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str):
        super().__init__()
        self.norm1 = LayerNorm(dim, layer_norm_type)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layer_norm_type)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """Overlapped patch embedding: a 3 x 3 conv, always without bias in the official code."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ConvShuffle(nn.Module):
    """A 3 x 3 conv without bias to ``out_channels``, then a pixel (un)shuffle by 2: the official ``body`` of
    :class:`Downsample` and :class:`Upsample` (their state-dict keys are the official ones)."""

    def __init__(self, channels: int, out_channels: int, shuffle: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False), shuffle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Downsample(ConvShuffle):
    """Halve the resolution, double the channels: 3 x 3 conv to C / 2, then pixel-unshuffle by 2."""

    def __init__(self, channels: int):
        super().__init__(channels, channels // 2, nn.PixelUnshuffle(2))


class Upsample(ConvShuffle):
    """Double the resolution, halve the channels: 3 x 3 conv to 2C, then pixel-shuffle by 2."""

    def __init__(self, channels: int):
        super().__init__(channels, channels * 2, nn.PixelShuffle(2))


@ARCH_REGISTRY.register()
@record_constructor_options
class Restormer(nn.Module):
    """Restormer: a 4-level encoder-decoder of transformer blocks; (N, 6, H, W) left then right view -> (N, 3, H, W).

    Arguments have the official names, so the official ``network_g`` block works as is; the defaults are the official
    dual-pixel configuration. With ``dual_pixel_task`` a 1 x 1 ``skip_conv`` adds the patch embedding to the refined
    features before the output conv, and there is no global residual; without it the input is added to the output
    (``inp_channels`` must then equal ``out_channels``). Any H and W are accepted: the input is padded to a multiple
    of 8 (three 2x down-samplings) and cropped back, which leaves the DPDD size (1680 x 1120) untouched.

    Args:
        inp_channels (int): Input channels: 6, left then right view. Default: 6.
        out_channels (int): Output channels (RGB). Default: 3.
        dim (int): Width of level 1; level l has ``dim * 2^(l-1)``. Default: 48.
        num_blocks (tuple[int, ...]): Transformer blocks of levels 1 to 4 (the decoder mirrors 1 to 3).
            Default: (4, 6, 6, 8).
        num_refinement_blocks (int): Blocks of the refinement stage after the decoder. Default: 4.
        heads (tuple[int, ...]): Attention heads of levels 1 to 4. Default: (1, 2, 4, 8).
        ffn_expansion_factor (float): Hidden width of the gated feed-forward network, as a multiple of the level's
            width. Default: 2.66.
        bias (bool): Biases in the convolutions. Default: False.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        dual_pixel_task (bool): The dual-pixel head: ``skip_conv`` and no global residual. Default: True.
    """

    size_multiple = 2 ** (NUM_LEVELS - 1)

    def __init__(
        self,
        inp_channels: int = 6,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks: tuple[int, ...] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: tuple[int, ...] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = 'WithBias',  # noqa: N803  (the official argument name)
        dual_pixel_task: bool = True,
    ):
        super().__init__()
        check_restormer_options(inp_channels, out_channels, dim, num_blocks, heads, LayerNorm_type, dual_pixel_task)
        self.inp_channels = inp_channels
        widths = [dim * 2**level for level in range(NUM_LEVELS)]

        def blocks(count: int, width: int, num_heads: int) -> nn.Sequential:
            return nn.Sequential(
                *(TransformerBlock(width, num_heads, ffn_expansion_factor, bias, LayerNorm_type) for _ in range(count))
            )

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = blocks(num_blocks[0], widths[0], heads[0])
        self.down1_2 = Downsample(widths[0])
        self.encoder_level2 = blocks(num_blocks[1], widths[1], heads[1])
        self.down2_3 = Downsample(widths[1])
        self.encoder_level3 = blocks(num_blocks[2], widths[2], heads[2])
        self.down3_4 = Downsample(widths[2])
        self.latent = blocks(num_blocks[3], widths[3], heads[3])

        self.up4_3 = Upsample(widths[3])
        self.reduce_chan_level3 = nn.Conv2d(widths[3], widths[2], kernel_size=1, bias=bias)
        self.decoder_level3 = blocks(num_blocks[2], widths[2], heads[2])
        self.up3_2 = Upsample(widths[2])
        self.reduce_chan_level2 = nn.Conv2d(widths[2], widths[1], kernel_size=1, bias=bias)
        self.decoder_level2 = blocks(num_blocks[1], widths[1], heads[1])
        self.up2_1 = Upsample(widths[1])  # level 1 keeps both halves of the concatenation: 2 * dim channels
        self.decoder_level1 = blocks(num_blocks[0], widths[1], heads[0])
        self.refinement = blocks(num_refinement_blocks, widths[1], heads[0])

        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, widths[1], kernel_size=1, bias=bias)
        self.output = nn.Conv2d(widths[1], out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_dual_pixel_input(x, self.inp_channels, 'Restormer')
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x, self.size_multiple)
        embedded = self.patch_embed(inp)
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        latent = self.latent(self.down3_4(enc3))

        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1)))

        if self.dual_pixel_task:
            out = self.output(dec1 + self.skip_conv(embedded))
        else:
            out = self.output(dec1) + inp
        return out[..., :h, :w]


def check_restormer_options(inp_channels, out_channels, dim, num_blocks, heads, layer_norm_type, dual_pixel_task):
    """Clear errors for option combinations the official code would crash on later (or silently accept)."""
    if len(num_blocks) != NUM_LEVELS or len(heads) != NUM_LEVELS:
        raise ValueError(f'Restormer: num_blocks and heads need {NUM_LEVELS} entries, got {num_blocks} and {heads}')
    if layer_norm_type not in LAYER_NORM_TYPES:
        raise ValueError(f'Restormer: LayerNorm_type must be one of {LAYER_NORM_TYPES}, got {layer_norm_type!r}')
    for level, num_heads in enumerate(heads):
        channels = dim * 2**level
        if channels % num_heads:
            raise ValueError(f'Restormer: level {level + 1} has {channels} channels: not {num_heads} equal heads')
    if dim % 2:
        raise ValueError(f'Restormer: dim must be even (down-sampling halves the channels), got {dim}')
    if not dual_pixel_task and inp_channels != out_channels:
        raise ValueError(
            'Restormer: without dual_pixel_task the input is added to the output, so inp_channels must equal '
            f'out_channels (got {inp_channels} and {out_channels}); use dual_pixel_task: true for 6-channel input'
        )
