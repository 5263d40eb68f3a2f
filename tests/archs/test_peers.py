"""The peers Restormer and DPDNet: official layouts and counts, official computations, the DPDNet Keras converter,
and training and testing through the entries with their option files.

The expected layouts and computations are written here from the official code's structure (facts), independently of
the archs: Restormer's forward with functional ops on a state dict, DPDNet's Keras forward in NHWC with TensorFlow's
"same" padding on BGR images.
"""

import runpy
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from basicsr.archs import build_network

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch.archs.dpdnet_arch import DPDNet
from dmtnet_arch.archs.restormer_arch import Restormer
from dmtnet_arch.tools.convert_dpdnet_keras import keras_to_dpdnet_state
from dmtnet_arch.utils.checkpoint import load_network_weights
from tests.helpers import (
    PYTHON,
    REPO,
    SIZE,
    TEST_ENTRY,
    TRAIN_ENTRY,
    check_ok,
    check_tiny_test_metrics,
    dataset_opt,
    make_data,
    run,
    temp_files,
    write_yaml,
)

# Tiny tensors gain nothing from threads, and on a busy machine waiting threads make them ten times slower.
ONE_THREAD = {'OMP_NUM_THREADS': '1'}


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


RESTORMER_PARAMS = 26_132_548  # the official dual-pixel model
DPDNET_PARAMS = 31_035_151  # the official Keras model (the DMTNet paper's Table 1 says 34.52 M)
TINY_RESTORMER = {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 1, 1, 1]}
TINY_DPDNET = {'base_channels': 4}


# ---------------------------------------------------------------------------------------------------------------
# Restormer: the official layout, written out from the official structure


def official_block_layout(prefix: str, channels: int, heads: int, ffn_factor: float = 2.66) -> dict:
    """Parameter shapes of one official TransformerBlock (bias False, WithBias LayerNorm)."""
    hidden = int(channels * ffn_factor)
    return {
        f'{prefix}.norm1.body.weight': (channels,),
        f'{prefix}.norm1.body.bias': (channels,),
        f'{prefix}.attn.temperature': (heads, 1, 1),
        f'{prefix}.attn.qkv.weight': (3 * channels, channels, 1, 1),
        f'{prefix}.attn.qkv_dwconv.weight': (3 * channels, 1, 3, 3),
        f'{prefix}.attn.project_out.weight': (channels, channels, 1, 1),
        f'{prefix}.norm2.body.weight': (channels,),
        f'{prefix}.norm2.body.bias': (channels,),
        f'{prefix}.ffn.project_in.weight': (2 * hidden, channels, 1, 1),
        f'{prefix}.ffn.dwconv.weight': (2 * hidden, 1, 3, 3),
        f'{prefix}.ffn.project_out.weight': (channels, hidden, 1, 1),
    }


def official_restormer_layout(dim=48, num_blocks=(4, 6, 6, 8), refinement=4, heads=(1, 2, 4, 8)) -> dict:
    """Every parameter of the official dual-pixel Restormer (6 input channels), name -> shape."""
    layout = {'patch_embed.proj.weight': (dim, 6, 3, 3)}
    levels = [
        ('encoder_level1', num_blocks[0], dim, heads[0]),
        ('encoder_level2', num_blocks[1], 2 * dim, heads[1]),
        ('encoder_level3', num_blocks[2], 4 * dim, heads[2]),
        ('latent', num_blocks[3], 8 * dim, heads[3]),
        ('decoder_level3', num_blocks[2], 4 * dim, heads[2]),
        ('decoder_level2', num_blocks[1], 2 * dim, heads[1]),
        ('decoder_level1', num_blocks[0], 2 * dim, heads[0]),
        ('refinement', refinement, 2 * dim, heads[0]),
    ]
    for name, count, channels, num_heads in levels:
        for index in range(count):
            layout.update(official_block_layout(f'{name}.{index}', channels, num_heads))
    for name, channels in (('down1_2', dim), ('down2_3', 2 * dim), ('down3_4', 4 * dim)):
        layout[f'{name}.body.0.weight'] = (channels // 2, channels, 3, 3)
    for name, channels in (('up4_3', 8 * dim), ('up3_2', 4 * dim), ('up2_1', 2 * dim)):
        layout[f'{name}.body.0.weight'] = (channels * 2, channels, 3, 3)
    layout['reduce_chan_level3.weight'] = (4 * dim, 8 * dim, 1, 1)
    layout['reduce_chan_level2.weight'] = (2 * dim, 4 * dim, 1, 1)
    layout['skip_conv.weight'] = (2 * dim, dim, 1, 1)
    layout['output.weight'] = (3, 2 * dim, 3, 3)
    return layout


def test_restormer_has_the_official_layout_and_official_weights_load_strictly():
    layout = official_restormer_layout()
    assert len(layout) == 495
    assert sum(int(np.prod(shape)) for shape in layout.values()) == RESTORMER_PARAMS
    # a few entries as they appear in the official checkpoint
    assert layout['encoder_level1.0.ffn.project_in.weight'] == (254, 48, 1, 1)
    assert layout['refinement.3.ffn.project_out.weight'] == (96, 255, 1, 1)
    assert layout['latent.7.attn.temperature'] == (8, 1, 1)
    assert layout['up4_3.body.0.weight'] == (768, 384, 3, 3)

    net = Restormer()  # the defaults are the official dual-pixel configuration
    assert sum(p.numel() for p in net.parameters()) == RESTORMER_PARAMS
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == layout
    official = {k: torch.randn(shape) for k, shape in layout.items()}
    net.load_state_dict(official, strict=True)
    assert torch.equal(net.latent[7].attn.temperature, official['latent.7.attn.temperature'])


def test_restormer_option_files_build_the_official_network():
    for name in ('train_Restormer_DP.yml', 'test_Restormer_DP.yml'):
        opt = yaml.safe_load((REPO / 'options' / name).read_text())
        with torch.device('meta'):
            net = build_network(opt['network_g'])
        assert isinstance(net, Restormer)
        assert sum(p.numel() for p in net.parameters()) == RESTORMER_PARAMS, name


# ---------------------------------------------------------------------------------------------------------------
# Restormer: the official forward, re-stated with functional ops on a state dict


def conv(x, state, key, padding=0, groups=1):
    return F.conv2d(x, state[f'{key}.weight'], state.get(f'{key}.bias'), padding=padding, groups=groups)


def reference_layer_norm(x, weight, bias):
    """Official to_3d -> WithBias_LayerNorm / BiasFree_LayerNorm -> to_4d."""
    n, c, h, w = x.shape
    tokens = x.reshape(n, c, h * w).transpose(1, 2)
    sigma = tokens.var(-1, keepdim=True, unbiased=False)
    if bias is None:
        tokens = tokens / torch.sqrt(sigma + 1e-5) * weight
    else:
        tokens = (tokens - tokens.mean(-1, keepdim=True)) / torch.sqrt(sigma + 1e-5) * weight + bias
    return tokens.transpose(1, 2).reshape(n, c, h, w)


def reference_block(x, state, prefix, heads):
    n, c, h, w = x.shape
    y = reference_layer_norm(x, state[f'{prefix}.norm1.body.weight'], state.get(f'{prefix}.norm1.body.bias'))
    qkv = conv(conv(y, state, f'{prefix}.attn.qkv'), state, f'{prefix}.attn.qkv_dwconv', padding=1, groups=3 * c)
    q, k, v = (t.reshape(n, heads, c // heads, h * w) for t in qkv.chunk(3, dim=1))
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    attention = torch.softmax((q @ k.transpose(-2, -1)) * state[f'{prefix}.attn.temperature'], dim=-1)
    x = x + conv((attention @ v).reshape(n, c, h, w), state, f'{prefix}.attn.project_out')
    y = reference_layer_norm(x, state[f'{prefix}.norm2.body.weight'], state.get(f'{prefix}.norm2.body.bias'))
    y = conv(y, state, f'{prefix}.ffn.project_in')
    y = conv(y, state, f'{prefix}.ffn.dwconv', padding=1, groups=y.shape[1])
    gate, value = y.chunk(2, dim=1)
    return x + conv(F.gelu(gate) * value, state, f'{prefix}.ffn.project_out')


def reference_level(x, state, name, count, heads):
    for index in range(count):
        x = reference_block(x, state, f'{name}.{index}', heads)
    return x


def space_to_depth(x):
    """PixelUnshuffle(2): output channel c * 4 + 2 * dy + dx."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def depth_to_space(x):
    """PixelShuffle(2), the inverse of space_to_depth."""
    n, c, h, w = x.shape
    return x.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


def reference_restormer(state, x, num_blocks, refinement, heads, dual_pixel_task):
    """The official Restormer.forward."""
    embedded = conv(x, state, 'patch_embed.proj', padding=1)
    enc1 = reference_level(embedded, state, 'encoder_level1', num_blocks[0], heads[0])
    enc2 = space_to_depth(conv(enc1, state, 'down1_2.body.0', padding=1))
    enc2 = reference_level(enc2, state, 'encoder_level2', num_blocks[1], heads[1])
    enc3 = space_to_depth(conv(enc2, state, 'down2_3.body.0', padding=1))
    enc3 = reference_level(enc3, state, 'encoder_level3', num_blocks[2], heads[2])
    latent = space_to_depth(conv(enc3, state, 'down3_4.body.0', padding=1))
    latent = reference_level(latent, state, 'latent', num_blocks[3], heads[3])
    dec3 = torch.cat([depth_to_space(conv(latent, state, 'up4_3.body.0', padding=1)), enc3], 1)
    dec3 = reference_level(conv(dec3, state, 'reduce_chan_level3'), state, 'decoder_level3', num_blocks[2], heads[2])
    dec2 = torch.cat([depth_to_space(conv(dec3, state, 'up3_2.body.0', padding=1)), enc2], 1)
    dec2 = reference_level(conv(dec2, state, 'reduce_chan_level2'), state, 'decoder_level2', num_blocks[1], heads[1])
    dec1 = torch.cat([depth_to_space(conv(dec2, state, 'up2_1.body.0', padding=1)), enc1], 1)
    dec1 = reference_level(dec1, state, 'decoder_level1', num_blocks[0], heads[0])
    dec1 = reference_level(dec1, state, 'refinement', refinement, heads[0])
    if dual_pixel_task:
        return conv(dec1 + conv(embedded, state, 'skip_conv'), state, 'output', padding=1)
    return conv(dec1, state, 'output', padding=1) + x


def randomised(net: torch.nn.Module, seed: int = 0) -> dict:
    """Random weights everywhere: LayerNorm weights and biases and attention temperatures away from their defaults."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        noise = torch.randn(value.shape, generator=generator)
        if key.endswith('temperature'):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator) * 2
        elif '.norm' in key and key.endswith('weight'):
            state[key] = 1 + 0.3 * noise
        elif value.dim() == 4:  # conv weights scaled by fan-in: outputs of order 1, where float32 rounding is small
            state[key] = noise * 0.5 / value[0].numel() ** 0.5
        else:
            state[key] = 0.2 * noise
    net.load_state_dict(state, strict=True)
    return state


# one case a line, aligned by hand: clearer than the formatter's layout
RESTORMER_CASES = {
    'dual-pixel, WithBias': dict(
        inp_channels=6, out_channels=3, dim=8, num_blocks=[1, 2, 1, 1], num_refinement_blocks=2, heads=[1, 2, 2, 4],
        bias=False, LayerNorm_type='WithBias', dual_pixel_task=True,
    ),
    'single image, BiasFree, bias': dict(
        inp_channels=3, out_channels=3, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[2, 2, 4, 4],
        bias=True, LayerNorm_type='BiasFree', dual_pixel_task=False,
    ),
}  # fmt: skip


@pytest.mark.parametrize('case', list(RESTORMER_CASES))
def test_restormer_computes_the_official_forward(case):
    options = RESTORMER_CASES[case]
    net = Restormer(**options).eval()
    state = randomised(net)
    x = torch.rand(2, options['inp_channels'], 16, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(x)
        structure = options['num_blocks'], options['num_refinement_blocks'], options['heads']
        expected = reference_restormer(state, x, *structure, options['dual_pixel_task'])
    assert ours.shape == (2, 3, 16, 24)
    assert expected.std() > 0.05  # a real signal, not a collapsed output
    assert (ours - expected).abs().max() < 1e-4


def test_restormer_pads_other_sizes_to_a_multiple_of_8_and_crops_back():
    options = RESTORMER_CASES['dual-pixel, WithBias']
    net = Restormer(**options).eval()
    state = randomised(net, seed=2)
    x = torch.rand(1, 6, 21, 30, generator=torch.Generator().manual_seed(3))
    padded = F.pad(x, (0, 2, 0, 3), mode='reflect')
    with torch.no_grad():
        expected = reference_restormer(state, padded, options['num_blocks'], 2, options['heads'], True)[..., :21, :30]
        assert (net(x) - expected).abs().max() < 1e-4
    with pytest.raises(ValueError, match=r'Restormer expects a \(N, 6, H, W\)'):
        net(torch.rand(1, 3, 16, 16))


# ---------------------------------------------------------------------------------------------------------------
# DPDNet: the official Keras model, its weights file and its forward on BGR images


def keras_kernel_shapes(base: int = 64) -> list[tuple[int, ...]]:
    """(h, w, in, out) of conv2d_1 ... conv2d_24 in the order DPDNet/model.py creates them."""
    widths = [base * 2**level for level in range(5)]
    shapes = []
    for c_in, c_out in zip([6, *widths[:-1]], widths, strict=True):
        shapes += [(3, 3, c_in, c_out), (3, 3, c_out, c_out)]
    for c_in, c_out in zip(widths[:0:-1], widths[-2::-1], strict=True):
        shapes += [(2, 2, c_in, c_out), (3, 3, 2 * c_out, c_out), (3, 3, c_out, c_out)]
    return [*shapes, (3, 3, base, 3), (1, 1, 3, 3)]


def test_dpdnet_parameter_count_and_keras_layer_order():
    shapes = keras_kernel_shapes()
    assert len(shapes) == 24
    assert shapes[10] == (2, 2, 1024, 512) and shapes[11] == (3, 3, 1024, 512)  # conv2d_11 (up6), conv2d_12
    assert sum(int(np.prod(s)) + s[-1] for s in shapes) == DPDNET_PARAMS
    with torch.device('meta'):
        net = DPDNet()
    assert sum(p.numel() for p in net.parameters()) == DPDNET_PARAMS
    ours = [tuple(conv.weight.shape[i] for i in (2, 3, 1, 0)) for conv in net.keras_layer_order()]
    assert ours == shapes
    for name in ('train_DPDNet.yml', 'test_DPDNet.yml'):
        with torch.device('meta'):
            built = build_network(yaml.safe_load((REPO / 'options' / name).read_text())['network_g'])
        assert sum(p.numel() for p in built.parameters()) == DPDNET_PARAMS, name


def test_dpdnet_starts_from_the_keras_initialisation():
    torch.manual_seed(0)
    net = DPDNet(base_channels=16)
    for conv in net.keras_layer_order()[:-1]:
        std = (2 / conv.weight[0].numel()) ** 0.5  # he_normal: truncated at 2 sigma, this deviation after truncation
        assert conv.weight.abs().max() <= 2 * std / 0.8796 + 1e-6
        if conv.weight.numel() > 100_000:
            assert conv.weight.std().item() == pytest.approx(std, rel=0.03)
        assert not conv.bias.any()
    assert net.head.out.weight.abs().max() <= 1.0 and not net.head.out.bias.any()  # glorot_uniform, 3 in, 3 out


def random_keras_layers(base: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """he_normal-like kernels and non-zero biases, float32 as Keras stores them."""
    rng = np.random.default_rng(seed)
    layers = []
    for shape in keras_kernel_shapes(base):
        fan_in = shape[0] * shape[1] * shape[2]
        kernel = rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)
        layers.append((kernel, rng.normal(0, 0.1, shape[-1]).astype(np.float32)))
    return layers


def write_keras_hdf5(path: Path, layers, first_number: int = 1, whole_model: bool = True, suffix: str = ':0'):
    """A whole-model Keras 2 file: model_weights/conv2d_N/conv2d_N/{kernel:0, bias:0}, plus weightless layers and an
    optimizer group, as Keras writes them; with ``whole_model=False`` a save_weights file (layers at the root); Keras 3
    numbers from ``conv2d`` (``first_number=0``) and writes ``kernel, bias`` (``suffix=''``)."""
    with h5py.File(path, 'w') as f:
        f.attrs['keras_version'] = b'2.2.4'
        f.attrs['backend'] = b'tensorflow'
        weights = f.create_group('model_weights') if whole_model else f
        names = []
        for number, (kernel, bias) in enumerate(layers, start=first_number):
            name = 'conv2d' if number == 0 else f'conv2d_{number}'
            group = weights.create_group(name)
            group.attrs['weight_names'] = [f'{name}/kernel{suffix}'.encode(), f'{name}/bias{suffix}'.encode()]
            group.create_group(name).create_dataset(f'kernel{suffix}', data=kernel)
            group[name].create_dataset(f'bias{suffix}', data=bias)
            names.append(name)
        for name in ('input_1', 'max_pooling2d_1', 'dropout_1', 'up_sampling2d_1', 'concatenate_1'):
            weights.create_group(name).attrs['weight_names'] = np.array([], dtype='S1')
            names.append(name)
        weights.attrs['layer_names'] = [name.encode() for name in names]
        if whole_model:
            f.create_dataset('optimizer_weights/training/Adam/iterations:0', data=np.int64(7))


def keras_same_conv(x, kernel, bias):
    """TensorFlow Conv2D, padding 'same', stride 1, on NHWC: the odd padding row/column goes at the bottom/right."""
    kh, kw = kernel.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    x = F.pad(x, (0, 0, left, kw - 1 - left, top, kh - 1 - top))
    h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = bias.expand(x.shape[0], h, w, -1).clone()
    for i in range(kh):
        for j in range(kw):
            out += torch.einsum('nhwc,co->nhwo', x[:, i : i + h, j : j + w], kernel[i, j])
    return out


def reference_dpdnet_keras(layers, x_bgr):
    """DPDNet/model.py's unet() at inference (dropout off) on an NHWC BGR batch, layers in creation order."""
    params = iter([(torch.from_numpy(k), torch.from_numpy(b)) for k, b in layers])

    def conv(x, activation=torch.relu):
        return activation(keras_same_conv(x, *next(params)))

    def pool(x):
        n, h, w, c = x.shape
        return x.reshape(n, h // 2, 2, w // 2, 2, c).amax(dim=(2, 4))

    def up(x):
        return x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)

    conv1 = conv(conv(x_bgr))
    conv2 = conv(conv(pool(conv1)))
    conv3 = conv(conv(pool(conv2)))
    drop4 = conv(conv(pool(conv3)))
    drop5 = conv(conv(pool(drop4)))
    conv6 = conv(conv(torch.cat([drop4, conv(up(drop5))], dim=3)))
    conv7 = conv(conv(torch.cat([conv3, conv(up(conv6))], dim=3)))
    conv8 = conv(conv(torch.cat([conv2, conv(up(conv7))], dim=3)))
    conv9 = conv(conv(conv(torch.cat([conv1, conv(up(conv8))], dim=3))))
    return conv(conv9, torch.sigmoid)


RGB_TO_BGR_VIEWS = [2, 1, 0, 5, 4, 3]


def test_dpdnet_keras_converter_round_trip(tmp_path, monkeypatch, capsys):
    base = TINY_DPDNET['base_channels']
    assert base == 4
    layers = random_keras_layers(base)
    keras_file = tmp_path / 'defocus_deblurring_dp_tiny.hdf5'
    write_keras_hdf5(keras_file, layers)
    output = tmp_path / 'converted' / 'DPDNet.pth'
    argv = ['convert_dpdnet_keras.py', '--input', str(keras_file), '--output', str(output), '--base-channels', '4']
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(SystemExit) as finished:
        runpy.run_path(str(REPO / 'scripts' / 'convert_dpdnet_keras.py'), run_name='__main__')
    assert finished.value.code == 0
    assert 'channels reordered BGR -> RGB' in capsys.readouterr().out
    assert temp_files(output.parent) == []
    converted = torch.load(output, weights_only=True)
    assert list(converted) == ['params', 'built_with']  # recorded like every checkpoint the plugin writes
    assert converted['built_with']['type'] == 'DPDNet' and converted['built_with']['options']['base_channels'] == 4

    net = DPDNet(base_channels=base).eval()
    assert load_network_weights(net, str(output)) == 'params'  # strict
    x = torch.rand(2, 6, 32, 48, generator=torch.Generator().manual_seed(0))  # left RGB, right RGB
    with torch.no_grad():
        ours = net(x)
        keras_bgr = reference_dpdnet_keras(layers, x[:, RGB_TO_BGR_VIEWS].permute(0, 2, 3, 1))
    expected = keras_bgr.flip(-1).permute(0, 3, 1, 2)  # BGR -> RGB, NHWC -> NCHW
    assert expected.std() > 1e-3  # not a saturated sigmoid
    assert (ours - expected).abs().max() < 1e-5
    # the channel order matters: the unconverted order would not match
    assert (ours - keras_bgr.permute(0, 3, 1, 2)).abs().max() > 1e-4


def test_dpdnet_converter_reads_other_keras_layouts_and_names_the_file_at_fault(tmp_path):
    base = TINY_DPDNET['base_channels']
    layers = random_keras_layers(base, seed=1)
    newer = tmp_path / 'newer.hdf5'
    write_keras_hdf5(newer, layers, first_number=0, suffix='')  # Keras 3: conv2d, conv2d_1, ..., conv2d_23
    weights_only = tmp_path / 'weights_only.hdf5'
    write_keras_hdf5(weights_only, layers, whole_model=False)
    for path in (newer, weights_only):
        state = keras_to_dpdnet_state(str(path), DPDNet(base_channels=base))
        assert torch.equal(state['encoder.1.conv1.weight'], torch.from_numpy(layers[2][0]).permute(3, 2, 0, 1))
        assert torch.equal(state['decoder.0.up.conv.bias'], torch.from_numpy(layers[10][1]))

    short = tmp_path / 'short.hdf5'
    write_keras_hdf5(short, layers[:-1])
    with pytest.raises(ValueError, match=r'short\.hdf5: expected the 24 Conv2D layers of DPDNet, found 23'):
        keras_to_dpdnet_state(str(short), DPDNet(base_channels=base))
    with pytest.raises(ValueError, match=r'newer\.hdf5: layer conv2d has kernel \(3, 3, 6, 4\)'):
        keras_to_dpdnet_state(str(newer), DPDNet(base_channels=8))
    not_hdf5 = tmp_path / 'weights.hdf5'
    not_hdf5.write_bytes(b'not an hdf5 file')
    with pytest.raises(ValueError, match=r'weights\.hdf5: not an HDF5 file'):
        keras_to_dpdnet_state(str(not_hdf5), DPDNet(base_channels=base))


# ---------------------------------------------------------------------------------------------------------------
# Training and testing through the entries with the peers' option files (networks shrunk, data tiny)

PEERS = {
    'Restormer': ('train_Restormer_DP.yml', 'test_Restormer_DP.yml', TINY_RESTORMER),
    'DPDNet': ('train_DPDNet.yml', 'test_DPDNet.yml', TINY_DPDNET),
}


def option_file(name: str, experiment: str, network: dict) -> dict:
    opt = yaml.safe_load((REPO / 'options' / name).read_text())
    opt['name'] = experiment
    opt['network_g'].update(network)
    return opt


def tiny_training(opt: dict, data: Path, iterations: int = 2) -> dict:
    """The option file's train, val and logger sections on tiny data for ``iterations`` steps."""
    train = opt['datasets']['train']
    roots = dataset_opt('tiny_train', data)
    train.update({k: v for k, v in roots.items() if k.startswith('dataroot') or k == 'name'})
    train.update(gt_size=SIZE, num_worker_per_gpu=0, batch_size_per_gpu=2)
    if 'gt_sizes' in train:  # progressive patches: two stages within the run
        train.update(mini_batch_sizes=[2, 1], iters=[1, iterations - 1], gt_sizes=[SIZE // 2, SIZE])
    opt['datasets']['val'] = dataset_opt('tiny_val', data)
    opt['train']['total_iter'] = iterations
    opt['val'].update(val_freq=iterations, save_img=True)
    opt['logger'].update(print_freq=1, save_checkpoint_freq=iterations, use_tb_logger=False)
    return opt


@pytest.mark.slow
@pytest.mark.parametrize('peer', list(PEERS))
def test_peer_trains_and_tests_through_the_entries(peer, tmp_path, new_name):
    train_file, test_file, network = PEERS[peer]
    data = make_data(tmp_path / 'data', 2)
    name = new_name(f'{peer}_train')
    opt = tiny_training(option_file(train_file, name, network), data)
    if opt['train']['scheduler']['type'] == 'CosineAnnealingRestartCyclicLR':
        # the full recipe, cyclic schedule included, runs in test_restormer_recipe_runs_as_written
        opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [2], 'restart_weights': [1]}
    result = run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'train.yml', opt)], tmp_path, ONE_THREAD)
    check_ok(result)
    assert f'Network [{peer}] is created.' in result.stderr
    assert 'Validation tiny_val' in result.stderr
    checkpoint = REPO / 'experiments' / name / 'models' / 'net_g_2.pth'
    assert f'Loss [{opt["train"]["pixel_opt"]["type"]}] is created.' in result.stderr
    state = torch.load(REPO / 'experiments' / name / 'training_states' / '2.state', weights_only=False)
    group, optim = state['optimizers'][0]['param_groups'][0], opt['train']['optim_g']
    assert group['decoupled_weight_decay'] == (optim['type'] == 'AdamW')  # Restormer: AdamW; DPDNet: Adam
    asked = optim['lr'], optim['weight_decay'], optim.get('eps', 1e-8)
    assert (group['initial_lr'], group['weight_decay'], group['eps']) == asked
    net = build_network({**opt['network_g']})
    load_network_weights(net, str(checkpoint), 'params')  # strict

    test_name = new_name(f'{peer}_test')
    test_opt = option_file(test_file, test_name, network)
    test_opt['datasets'] = {'test_1': dataset_opt('tiny_test', data)}
    test_opt['path']['pretrain_network_g'] = str(checkpoint)
    result = run([PYTHON, TEST_ENTRY, '-opt', write_yaml(tmp_path / 'test.yml', test_opt)], tmp_path, ONE_THREAD)
    check_ok(result)
    assert f'Loading {peer} model from {checkpoint}' in result.stderr
    check_tiny_test_metrics(REPO / 'results' / test_name / 'metrics_tiny_test.csv')
    assert len(list((REPO / 'results' / test_name / 'visualization' / 'tiny_test').glob('*.png'))) == 2


@pytest.mark.slow
def test_restormer_recipe_runs_as_written(tmp_path, new_name):
    """AdamW, L1, gradient clipping, the cyclic cosine schedule and progressive patches, as the file has them."""
    data = make_data(tmp_path / 'data', 2)
    opt = tiny_training(option_file('train_Restormer_DP.yml', new_name('Restormer_recipe'), TINY_RESTORMER), data)
    opt['train']['scheduler'].update(periods=[1, 1])
    opt['val']['save_img'] = False
    result = run([PYTHON, TRAIN_ENTRY, '-opt', write_yaml(tmp_path / 'recipe.yml', opt)], tmp_path, ONE_THREAD)
    check_ok(result)
    assert 'Network [Restormer] is created.' in result.stderr
