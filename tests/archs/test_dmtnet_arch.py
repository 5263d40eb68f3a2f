"""DMTNet network contract: shapes, attention, scale weights, ablations, gradients, registry construction."""

import math

import pytest
import torch
import yaml
from basicsr.archs import build_network
from torch import nn

import dmtnet_arch  # noqa: F401  (registers DMTNet)
from dmtnet_arch.archs.dmtnet_arch import (
    DMSSRM,
    VARIANT_DMSSRMS,
    DMTNet,
    TransformerBlock,
    WindowAttention,
    shifted_window_mask,
    window_partition,
)

# A structurally complete but shallow configuration keeps gradient tests fast on two CPU cores.
SHALLOW = {'num_rbm': 1, 'num_rm': 2, 'upsampler_channels': 32}


@pytest.fixture(scope='module')
def net_b():
    torch.manual_seed(0)
    return DMTNet(variant='B').eval()


@pytest.mark.parametrize('shape', [(1, 6, 37, 53), (2, 6, 37, 53), (3, 6, 64, 40), (2, 6, 17, 9)])
def test_any_size_in_same_size_out(net_b, shape):
    with torch.no_grad():
        out = net_b(torch.rand(shape))
    assert out.shape == (shape[0], 3, *shape[2:])
    assert torch.isfinite(out).all()


def test_batch_items_are_independent(net_b):
    x = torch.rand(2, 6, 40, 48)
    with torch.no_grad():
        batched = net_b(x)
        single = net_b(x[1:])
    torch.testing.assert_close(batched[1:], single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('shape', [(1, 3, 32, 32), (1, 7, 32, 32), (6, 32, 32)])
def test_wrong_input_shape_is_a_clear_error(net_b, shape):
    with pytest.raises(ValueError, match=r'\(N, 6, H, W\).*left then the right'):
        net_b(torch.rand(shape))


def test_unknown_variant_names_the_choices():
    with pytest.raises(ValueError, match="Unknown DMTNet variant 'X'.*T, S, B, L, H"):
        DMTNet(variant='X')


@pytest.mark.parametrize('variant', list(VARIANT_DMSSRMS))
def test_variant_sets_number_of_dmssrms(variant):
    net = DMTNet(variant=variant, **SHALLOW)
    assert len(net.reconstruction.stages) == VARIANT_DMSSRMS[variant]


def test_structural_numbers_can_be_given_explicitly():
    net = DMTNet(
        variant='T',
        embed_dim=48,
        num_heads=2,
        window_size=4,
        num_transformer_blocks=3,
        num_dmssrm=1,
        num_scales=2,
        rgm_channels=16,
        num_rbm=2,
        num_rm=3,
        mlp_ratio=2.0,
    )
    assert net.feature_extraction.patch_partition.proj.out_channels == 48
    assert len(net.feature_extraction.blocks) == 3
    assert net.feature_extraction.blocks[0].window_size == 4
    assert net.feature_extraction.blocks[0].mlp.fc1.out_features == 96
    stage = net.reconstruction.stages[0]
    assert len(stage.branches) == 2
    rgm = stage.branches[0].rgm
    assert len(rgm.body) == 2 and len(rgm.body[0].body) == 3 + 1  # three RMs and the closing conv
    assert rgm.body[0].body[0].body[0].out_channels == 16
    with torch.no_grad():
        assert net(torch.rand(1, 6, 30, 22)).shape == (1, 3, 30, 22)


def reference_window_attention(attn: WindowAttention, windows, shift_mask):
    """softmax(Q K^T / sqrt(d) + B + M) V written out by hand."""
    n, nw, t, c = windows.shape
    q, k, v = (x.view(n, nw, *x.shape[1:]) for x in attn.project_qkv(windows))  # (N, nW, heads, T, d)
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + attn.relative_position_bias()
    if shift_mask is not None:
        logits = logits + shift_mask[:, None]
    out = torch.softmax(logits, dim=-1) @ v
    return attn.proj(out.transpose(2, 3).reshape(n, nw, t, c))


@pytest.mark.parametrize('shifted', [False, True])
def test_sdpa_window_attention_equals_plain_softmax(shifted):
    torch.manual_seed(1)
    attn = WindowAttention(dim=96, window_size=8, num_heads=3).eval()
    nn.init.normal_(attn.relative_position_bias_table, std=1.0)  # a bias large enough to matter
    x = torch.randn(2, 16, 24, 96)
    windows = window_partition(x, 8)
    mask = shifted_window_mask(16, 24, 8, 4) if shifted else None
    with torch.no_grad():
        fused = attn(windows, mask)
        plain = reference_window_attention(attn, windows, mask)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


def test_window_attention_runs_the_fused_cpu_kernel():
    attn = WindowAttention(dim=96, window_size=8, num_heads=3).eval()
    windows = window_partition(torch.randn(2, 16, 16, 96), 8)
    with torch.no_grad(), torch.profiler.profile() as prof:
        attn(windows, shifted_window_mask(16, 16, 8, 4))
    kernels = {event.key for event in prof.key_averages() if 'scaled_dot_product' in event.key}
    assert 'aten::_scaled_dot_product_flash_attention_for_cpu' in kernels, kernels
    assert not any('math' in kernel for kernel in kernels), kernels


def test_shifted_windows_do_not_mix_wrapped_regions():
    mask = shifted_window_mask(16, 16, 8, 4)
    assert mask.shape == (4, 64, 64)
    assert (mask[0] == 0).all()  # the top-left window holds no wrapped-around tokens
    assert torch.isinf(mask[-1]).any()  # the bottom-right window holds four regions that must not attend
    assert (torch.diagonal(mask, dim1=1, dim2=2) == 0).all()  # every token still sees itself


def test_shift_alternates_and_is_off_when_disabled():
    shifts = [b.shift for b in DMTNet(variant='T').feature_extraction.blocks]
    assert shifts == [0, 4, 0, 4, 0]
    assert all(b.shift == 0 for b in DMTNet(variant='T', shifted_windows=False).feature_extraction.blocks)


def test_scale_weights_sum_to_one_and_follow_the_input(net_b):
    with torch.no_grad():
        net_b(torch.rand(2, 6, 32, 32))
        first = [a.clone() for a in net_b.scale_weights]
        net_b(torch.rand(2, 6, 32, 32) * 0.2)
        second = net_b.scale_weights
    assert len(first) == 2
    for alpha, other in zip(first, second, strict=True):
        assert alpha.shape == (2, 3)
        torch.testing.assert_close(alpha.sum(dim=1), torch.ones(2))
        assert not torch.allclose(alpha, other, atol=1e-6)
        assert not alpha.requires_grad


def test_fixed_selection_has_no_selection_parameters_and_equal_weights():
    net = DMTNet(variant='B', dynamic_selection=False, **SHALLOW).eval()
    assert not [name for name, _ in net.named_parameters() if 'selection' in name]
    assert all(stage.selection is None for stage in net.reconstruction.stages)
    with torch.no_grad():
        net(torch.rand(2, 6, 32, 32))
    for alpha in net.scale_weights:
        torch.testing.assert_close(alpha, torch.full((2, 3), 1 / 3))
    dynamic = DMTNet(variant='B', **SHALLOW)
    assert sum(p.numel() for p in dynamic.parameters()) - sum(p.numel() for p in net.parameters()) == 2 * (96 * 3 + 3)


def test_cnn_ablation_has_no_attention():
    net = DMTNet(variant='B', feature_extractor='cnn', **SHALLOW)
    kinds = {type(m) for m in net.modules()}
    assert WindowAttention not in kinds and TransformerBlock not in kinds
    strides = [m.stride for m in net.feature_extraction.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [(2, 2), (2, 2)]
    with torch.no_grad():
        assert net(torch.rand(1, 6, 37, 53)).shape == (1, 3, 37, 53)


def test_unknown_feature_extractor_is_rejected():
    with pytest.raises(ValueError, match='feature_extractor'):
        DMTNet(feature_extractor='mamba')


@pytest.mark.parametrize(
    'options',
    [
        {'variant': 'T'},
        {'variant': 'B', **SHALLOW},
        {'variant': 'S', 'feature_extractor': 'cnn', **SHALLOW},
        {'variant': 'S', 'dynamic_selection': False, **SHALLOW},
    ],
)
def test_every_parameter_receives_a_gradient(options):
    torch.manual_seed(0)
    net = DMTNet(**options).train()
    loss = net(torch.rand(2, 6, 36, 44)).square().mean()
    loss.backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f'parameters without gradient: {missing}'


def test_eval_output_is_deterministic(net_b):
    x = torch.rand(1, 6, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(net_b(x), net_b(x), rtol=0, atol=0)


def test_input_residual_adds_the_combined_view():
    torch.manual_seed(0)
    plain = DMTNet(variant='T').eval()
    torch.manual_seed(0)
    residual = DMTNet(variant='T', input_residual=True).eval()
    x = torch.rand(1, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(residual(x) - plain(x), (x[:, :3] + x[:, 3:]) / 2, rtol=1e-5, atol=1e-5)


def test_yaml_network_block_builds_the_same_network():
    opt = yaml.safe_load(
        """
        network_g:
          type: DMTNet
          variant: S
          num_rbm: 1
          num_rm: 2
          feature_extractor: transformer
          dynamic_selection: true
        """
    )['network_g']
    torch.manual_seed(3)
    built = build_network(dict(opt)).eval()
    opt.pop('type')
    torch.manual_seed(3)
    direct = DMTNet(**opt).eval()
    assert type(built) is DMTNet
    built_state, direct_state = built.state_dict(), direct.state_dict()
    assert built_state.keys() == direct_state.keys()
    for key, value in built_state.items():
        torch.testing.assert_close(value, direct_state[key], rtol=0, atol=0)
    x = torch.rand(1, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(built(x), direct(x), rtol=0, atol=0)


def test_dmssrm_applies_equation_14():
    torch.manual_seed(0)
    stage = DMSSRM(dim=8, channels=4, num_scales=3, num_blocks=1, num_modules=1).eval()
    x = torch.rand(2, 8, 8, 8)
    with torch.no_grad():
        out = stage(x)
        alpha = stage.last_alpha
        expected = x + sum(alpha[:, j, None, None, None] * branch(x) for j, branch in enumerate(stage.branches))
        torch.testing.assert_close(out, stage.fusion(expected))
