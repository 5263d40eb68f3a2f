"""DMTNet (Zhang and Wang): a transformer feature extractor and cascaded dynamic multi-scale CNN reconstruction.

Equation numbers refer to the paper; ``docs/architecture.md`` records every choice the paper leaves open.
"""

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from dmtnet_arch.archs.arch_util import check_dual_pixel_input, pad_to_multiple
from dmtnet_arch.utils.checkpoint import record_constructor_options

# Number of DMSSRMs per variant (Table 1).
VARIANT_DMSSRMS = {'T': 0, 'S': 1, 'B': 2, 'L': 3, 'H': 4}


class PatchPartition(nn.Module):
    """Patch partition D_Patch (eq. 2): a P x P stride-P convolution, then LayerNorm over the token channels."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(W^2, W^2) index into the (2W - 1)^2 table of relative offsets between two positions of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing='ij'))
    coords = coords.flatten(1)
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return offsets[..., 0] * (2 * window_size - 1) + offsets[..., 1]


@lru_cache(maxsize=32)
def shifted_window_mask(height: int, width: int, window_size: int, shift: int, device=None) -> torch.Tensor:
    """(nW, W^2, W^2) additive mask that keeps attention inside the regions a cyclic shift brought together.

    Cached per size and device, so a forward pass on GPU does not copy it from host memory in every block."""
    regions = torch.zeros(height, width)
    bounds = (slice(0, -window_size), slice(-window_size, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[rows, cols] = label
            label += 1
    windows = window_partition(regions[None, :, :, None], window_size)[0, ..., 0]
    different = windows[:, :, None] != windows[:, None, :]
    return torch.zeros(different.shape).masked_fill(different, float('-inf')).to(device)


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(N, H, W, C) -> (N, nW, W^2, C) non-overlapping windows."""
    n, h, w, c = x.shape
    x = x.view(n, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, -1, window_size * window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """(N, nW, W^2, C) windows -> (N, H, W, C)."""
    n, _, _, c = windows.shape
    x = windows.view(n, height // window_size, width // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, height, width, c)


class WindowAttention(nn.Module):
    """Window multi-head self-attention W-MSA (eq. 8) with a learned relative position bias, through fused SDPA."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer('relative_position_index', relative_position_index(window_size), persistent=False)

    def relative_position_bias(self) -> torch.Tensor:
        """(heads, W^2, W^2) bias added to the attention logits."""
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        tokens = self.window_size**2
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)

    def project_qkv(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, nW, T, C) -> three (N * nW, heads, T, C / heads) tensors: the 4-D layout fused SDPA kernels take."""
        n, nw, t, c = windows.shape
        qkv = self.qkv(windows).view(n * nw, t, 3, self.num_heads, c // self.num_heads)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def attention_mask(self, shift_mask: torch.Tensor | None, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """Relative position bias (heads, T, T), plus the shift mask repeated per image: (N * nW, heads, T, T)."""
        mask = self.relative_position_bias()
        if shift_mask is not None:
            mask = (mask[None] + shift_mask[:, None]).repeat(batch, 1, 1, 1)
        return mask.to(dtype)

    def forward(self, windows: torch.Tensor, shift_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, nw, t, c = windows.shape
        q, k, v = self.project_qkv(windows)
        mask = self.attention_mask(shift_mask, n, q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(n, nw, t, c))


class Mlp(nn.Module):
    """The transformer block's two-layer perceptron (eq. 11)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Transformer block: X = WMSA(LN(X)) + X (eq. 10); X = MLP(LN(X)) + X (eq. 11); optional cyclic shift."""

    def __init__(self, dim: int, window_size: int, num_heads: int, mlp_ratio: float, shift: int):
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def window_self_attention(self, x: torch.Tensor) -> torch.Tensor:
        """W-MSA on a (N, H, W, C) map, shifted by ``shift`` when the map is larger than a window."""
        _, h, w, _ = x.shape
        shift = self.shift if min(h, w) > self.window_size else 0
        shift_mask = None
        if shift:
            x = torch.roll(x, (-shift, -shift), dims=(1, 2))
            shift_mask = shifted_window_mask(h, w, self.window_size, shift, x.device)
        windows = self.attn(window_partition(x, self.window_size), shift_mask)
        x = window_reverse(windows, self.window_size, h, w)
        return torch.roll(x, (shift, shift), dims=(1, 2)) if shift else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.window_self_attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerFeatureExtraction(nn.Module):
    """Feature extraction D_FeatureExtraction (eq. 3): patch partition, then N_T transformer blocks."""

    def __init__(self, in_channels, embed_dim, patch_size, num_blocks, window_size, num_heads, mlp_ratio, shifted):
        super().__init__()
        self.patch_partition = PatchPartition(in_channels, embed_dim, patch_size)
        shifts = [(window_size // 2 if shifted and i % 2 else 0) for i in range(num_blocks)]
        self.blocks = nn.Sequential(
            *(TransformerBlock(embed_dim, window_size, num_heads, mlp_ratio, s) for s in shifts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_partition(x).permute(0, 2, 3, 1)
        return self.blocks(x).permute(0, 3, 1, 2)


class CNNFeatureExtraction(nn.Module):
    """Table 2 ablation ("CNN"): two 3x3 stride-2 convolutions in place of patch partition and transformer blocks."""

    def __init__(self, in_channels: int, embed_dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, embed_dim, 3, stride=2, padding=1),
            nn.PReLU(),
            nn.Conv2d(embed_dim, embed_dim, 3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualModule(nn.Module):
    """RM: conv3x3, PReLU, conv3x3 with an identity skip (section 4.2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualBlockModule(nn.Module):
    """RBM: a chain of RMs closed by a conv3x3, with a skip (RCAN's residual group without channel attention)."""

    def __init__(self, channels: int, num_modules: int):
        super().__init__()
        self.body = nn.Sequential(
            *(ResidualModule(channels) for _ in range(num_modules)), nn.Conv2d(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroupModule(nn.Module):
    """RGM: a chain of RBMs with a long skip; the same configuration in every scale branch (section 3.3.1)."""

    def __init__(self, channels: int, num_blocks: int, num_modules: int):
        super().__init__()
        self.body = nn.Sequential(*(ResidualBlockModule(channels, num_modules) for _ in range(num_blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ScaleBranch(nn.Module):
    """One scale of a DMSSRM, F_scale_j in eq. 14: average-pool by 2^(j-1), RGM at 64 channels, back up bilinearly."""

    def __init__(self, dim: int, channels: int, factor: int, num_blocks: int, num_modules: int):
        super().__init__()
        self.factor = factor
        self.down = nn.AvgPool2d(factor) if factor > 1 else nn.Identity()
        self.squeeze = nn.Conv2d(dim, channels, 1)
        self.rgm = ResidualGroupModule(channels, num_blocks, num_modules)
        self.expand = nn.Conv2d(channels, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.rgm(self.squeeze(self.down(x))))
        if self.factor > 1:
            y = F.interpolate(y, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return y


class AdaptiveScaleSelection(nn.Module):
    """Adaptive multi-scale selection: alpha = softmax(W_1x1(GAP(F_{i-1}))) over the S scales (eq. 15-16)."""

    def __init__(self, dim: int, num_scales: int):
        super().__init__()
        self.fc = nn.Conv2d(dim, num_scales, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(F.adaptive_avg_pool2d(x, 1)).flatten(1)
        return torch.softmax(logits.float(), dim=1).to(x.dtype)


class DMSSRM(nn.Module):
    """Dynamic multi-scale sub-reconstruction module: F_i = W_1x1(sum_j alpha_j F_scale_j + F_{i-1}) (eq. 14).

    After each forward, ``last_alpha`` holds the (N, S) scale weights of that call (detached); with
    ``dynamic=False`` (Table 2, "fixed") the selection module is absent and every alpha_j is 1 / S.
    """

    def __init__(self, dim, channels, num_scales, num_blocks, num_modules, dynamic: bool = True):
        super().__init__()
        self.num_scales = num_scales
        self.branches = nn.ModuleList(
            ScaleBranch(dim, channels, 2**j, num_blocks, num_modules) for j in range(num_scales)
        )
        self.selection = AdaptiveScaleSelection(dim, num_scales) if dynamic else None
        self.fusion = nn.Conv2d(dim, dim, 1)
        self.last_alpha: torch.Tensor | None = None

    def predict_alpha(self, x: torch.Tensor) -> torch.Tensor:
        """(N, S) weights alpha_j: predicted per image, or the fixed 1 / S."""
        if self.selection is None:
            return x.new_full((x.shape[0], self.num_scales), 1.0 / self.num_scales)
        return self.selection(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.predict_alpha(x)
        self.last_alpha = alpha.detach()
        fused = x
        for j, branch in enumerate(self.branches):
            fused = fused + alpha[:, j, None, None, None] * branch(x)
        return self.fusion(fused)


class Reconstruction(nn.Module):
    """Reconstruction D_Reconstruction: cascaded DMSSRMs F_i = DMSSRM_i(F_{i-1}) (eq. 12), F_S = F_D + F_0 (eq. 13)."""

    def __init__(self, num_dmssrm, dim, channels, num_scales, num_blocks, num_modules, dynamic):
        super().__init__()
        self.stages = nn.Sequential(
            *(DMSSRM(dim, channels, num_scales, num_blocks, num_modules, dynamic) for _ in range(num_dmssrm))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stages(x) if len(self.stages) else x


class UpSampling(nn.Module):
    """Up-sampling D_Up (eq. 5): conv3x3, PReLU, conv3x3 to 3 * P^2 channels, then pixel shuffle by P."""

    def __init__(self, dim: int, hidden: int, out_channels: int, patch_size: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1),
            nn.PReLU(),
            nn.Conv2d(hidden, out_channels * patch_size**2, 3, padding=1),
            nn.PixelShuffle(patch_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@ARCH_REGISTRY.register()
@record_constructor_options
class DMTNet(nn.Module):
    """DMTNet, I_S = DMTNet(I_L, I_R) (eq. 6): (N, 6, H, W) left then right view in [0, 1] -> (N, 3, H, W).

    ``variant`` (T, S, B, L, H) sets the number of DMSSRMs of Table 1; ``num_dmssrm`` overrides it. Any H and W
    are accepted: the input is padded to the multiple the patch, window and scale sizes need and cropped back.
    After a forward, :attr:`scale_weights` lists each DMSSRM's (N, S) alpha (Figure 5). The defaults are the
    paper's (section 4.2, Table 1), or chosen where it is silent; docs/architecture.md says which and why.

    Args:
        variant (str): 'T', 'S', 'B', 'L' or 'H': 0 to 4 DMSSRMs (Table 1). Default: 'B'.
        in_channels (int): Input channels: 6, the left view's RGB then the right view's. Default: 6.
        out_channels (int): Output channels (RGB). Default: 3.
        embed_dim (int): Feature width C after the patch partition. Default: 96.
        patch_size (int): Patch size P of the partition; the features are at 1/P of the image. Default: 4.
        num_transformer_blocks (int): Window-attention blocks N_T of the feature extraction. Default: 5.
        window_size (int): Attention window W, in feature positions. Default: 8.
        num_heads (int): Attention heads per block. Default: 3.
        mlp_ratio (float): Hidden width of each block's MLP, as a multiple of C. Default: 4.0.
        shifted_windows (bool): Shift the windows by W / 2 in every second block (Swin). Default: True.
        num_dmssrm (int | None): DMSSRMs N_D, overriding ``variant``'s. Default: None.
        num_scales (int): Scales S per DMSSRM: branch j works at 1 / 2^(j-1) of the features. Default: 3.
        rgm_channels (int): Width of each scale branch's residual group module (RGM). Default: 64.
        num_rbm (int): Residual block modules (RBMs) per RGM. Default: 5.
        num_rm (int): Residual modules (RMs) per RBM. Default: 10.
        upsampler_channels (int): Hidden width of the up-sampling before the pixel shuffle by P. Default: 480.
        feature_extractor (str): 'transformer', or 'cnn' for Table 2's ablation (two stride-2 convolutions
            replace the patch partition and the transformer blocks; needs ``patch_size`` 4). Default: 'transformer'.
        dynamic_selection (bool): Weigh the scales by the learned selection (GAP, 1x1 conv, softmax); False is
            Table 2's fixed ablation (every scale 1 / S). Default: True.
        input_residual (bool): Add the mean of the two views to the output (not in the paper; for short
            trainings). Needs ``in_channels`` 6 and ``out_channels`` 3. Default: False.
    """

    def __init__(
        self,
        variant: str = 'B',
        in_channels: int = 6,
        out_channels: int = 3,
        embed_dim: int = 96,
        patch_size: int = 4,
        num_transformer_blocks: int = 5,
        window_size: int = 8,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        shifted_windows: bool = True,
        num_dmssrm: int | None = None,
        num_scales: int = 3,
        rgm_channels: int = 64,
        num_rbm: int = 5,
        num_rm: int = 10,
        upsampler_channels: int = 480,
        feature_extractor: str = 'transformer',
        dynamic_selection: bool = True,
        input_residual: bool = False,
    ):
        super().__init__()
        if variant not in VARIANT_DMSSRMS:
            raise ValueError(f'Unknown DMTNet variant {variant!r}; expected one of {", ".join(VARIANT_DMSSRMS)}')
        if feature_extractor not in ('transformer', 'cnn'):
            raise ValueError(f"feature_extractor must be 'transformer' or 'cnn', got {feature_extractor!r}")
        if feature_extractor == 'cnn' and patch_size != 4:
            raise ValueError('feature_extractor cnn down-samples by 4 (two stride-2 convs); patch_size must be 4')
        if input_residual and (in_channels != 6 or out_channels != 3):
            raise ValueError('input_residual adds the mean of the two views: it needs in_channels 6, out_channels 3')
        self.in_channels = in_channels
        self.input_residual = input_residual
        num_dmssrm = VARIANT_DMSSRMS[variant] if num_dmssrm is None else num_dmssrm
        if feature_extractor == 'transformer':
            self.feature_extraction = TransformerFeatureExtraction(
                in_channels,
                embed_dim,
                patch_size,
                num_transformer_blocks,
                window_size,
                num_heads,
                mlp_ratio,
                shifted_windows,
            )
            feature_multiple = math.lcm(window_size, 2 ** (num_scales - 1))
        else:
            self.feature_extraction = CNNFeatureExtraction(in_channels, embed_dim)
            feature_multiple = 2 ** (num_scales - 1)
        self.size_multiple = patch_size * feature_multiple
        self.reconstruction = Reconstruction(
            num_dmssrm, embed_dim, rgm_channels, num_scales, num_rbm, num_rm, dynamic_selection
        )
        self.upsampling = UpSampling(embed_dim, upsampler_channels, out_channels, patch_size)

    @staticmethod
    def describe_state_dict(state: dict) -> str:
        """The variant a state dict's number of DMSSRMs implies (Table 1), e.g. 'DMTNet-T', with a non-default width."""
        stages = {key.split('.')[2] for key in state if key.startswith('reconstruction.stages.')}
        variants = {count: variant for variant, count in VARIANT_DMSSRMS.items()}
        name = f'DMTNet-{variants[len(stages)]}' if len(stages) in variants else f'DMTNet with {len(stages)} DMSSRMs'
        embedding = state.get('feature_extraction.patch_partition.proj.weight')
        return name if embedding is None or embedding.shape[0] == 96 else f'{name} (embed_dim {embedding.shape[0]})'

    @property
    def scale_weights(self) -> list[torch.Tensor]:
        """Each DMSSRM's (N, S) alpha from the last forward call, in cascade order."""
        return [stage.last_alpha for stage in self.reconstruction.stages]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_dual_pixel_input(x, self.in_channels, 'DMTNet')
        h, w = x.shape[-2:]
        features = self.feature_extraction(pad_to_multiple(x, self.size_multiple))
        out = self.upsampling(self.reconstruction(features))[..., :h, :w]
        if self.input_residual:
            left, right = x.chunk(2, dim=1)
            out = out + (left + right) / 2
        return out
