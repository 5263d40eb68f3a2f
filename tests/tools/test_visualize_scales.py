"""scripts/visualize_scales.py: Figure 5 PNG for one pair, alpha CSV and plot for a test set, untrained runs."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.arch_util import pad_to_multiple
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.data.synthetic_dp import generate_dataset
from dmtnet_arch.tools.scale_analysis import scale_features
from dmtnet_arch.utils.img_util import write_image
from dmtnet_arch.utils.plot_util import feature_image
from tests.helpers import load_script

NETWORK = {
    'type': 'DMTNet',
    'variant': 'B',
    'num_transformer_blocks': 1,
    'upsampler_channels': 16,
    'num_rbm': 1,
    'num_rm': 1,
}
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def run(argv) -> int:
    return load_script('visualize_scales').main([str(a) for a in argv])


def tiny_net() -> DMTNet:
    torch.manual_seed(0)
    return DMTNet(**{k: v for k, v in NETWORK.items() if k != 'type'}).eval()


@pytest.fixture
def options(tmp_path):
    torch.save({'params': tiny_net().state_dict()}, tmp_path / 'net.pth')
    path = tmp_path / 'net.yml'
    path.write_text('network_g:\n' + ''.join(f'  {k}: {v}\n' for k, v in NETWORK.items()))
    return path


def test_scale_features_are_the_branch_outputs_and_their_weighted_sum():
    net = tiny_net()
    lq = torch.rand(1, 6, 40, 52)
    output, stages = scale_features(net, lq)
    assert len(stages) == 2 and output.shape == (1, 3, 40, 52)
    torch.testing.assert_close(torch.from_numpy(stages[1].alpha), net.scale_weights[1][0])
    # the first DMSSRM works on the transformer's features: recompute its branches directly
    with torch.no_grad():
        features = net.feature_extraction(pad_to_multiple(lq, net.size_multiple))
        branch_out = [branch(features)[0, :, :10, :13] for branch in net.reconstruction.stages[0].branches]
    for mine, direct in zip(stages[0].scale_maps, branch_out, strict=True):
        assert mine.shape == (96, 10, 13)  # ceil(40 / 4) x ceil(52 / 4): the image, not the padding
        torch.testing.assert_close(mine, direct)
    expected_sum = sum(float(a) * m for a, m in zip(stages[0].alpha, branch_out, strict=True))
    torch.testing.assert_close(stages[0].weighted_sum, expected_sum, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('mode', ['mean', 'pca'])
def test_feature_images_are_in_range(mode):
    image = feature_image(torch.randn(16, 12, 9), mode)
    assert image.shape == ((12, 9) if mode == 'mean' else (12, 9, 3))
    assert image.min() >= 0 and image.max() <= 1 and image.std() > 0


def test_network_without_dmssrm_is_refused():
    with pytest.raises(ValueError, match='no DMSSRM'):
        scale_features(DMTNet(variant='T', num_transformer_blocks=1, upsampler_channels=16), torch.rand(1, 6, 32, 32))


@pytest.mark.parametrize('trained', [True, False])
def test_figure_5_png_for_one_pair(tmp_path, options, trained, capsys):
    rng = np.random.default_rng(0)
    for view in 'LR':
        write_image(tmp_path / f'a_{view}.png', rng.integers(0, 256, (36, 44, 3)).astype(np.uint8))
    argv = ['-opt', options, '--left', tmp_path / 'a_L.png', '--right', tmp_path / 'a_R.png']
    argv += ['--output', tmp_path / 'fig5.png'] + (['--weights', tmp_path / 'net.pth'] if trained else [])
    assert run(argv) == 0
    assert (tmp_path / 'fig5.png').read_bytes().startswith(PNG_SIGNATURE)
    printed = capsys.readouterr().out
    assert ('UNTRAINED weights' in printed) != trained
    assert ('UNTRAINED weights' in Image.open(tmp_path / 'fig5.png').text['Title']) != trained
    alphas = [
        [float(a) for a in group.split(', ')] for group in printed.split('alpha per DMSSRM (')[1][:-2].split('), (')
    ]
    assert len(alphas) == 2 and all(sum(group) == pytest.approx(1, abs=2e-3) for group in alphas)


def test_alpha_against_defocus_over_a_synthetic_test_set(tmp_path, options):
    generate_dataset(tmp_path / 'val', 3, size=(32, 40), seed=3, progress=False)
    argv = ['-opt', options, '--weights', tmp_path / 'net.pth', '--input', tmp_path / 'val', '--output', tmp_path / 'o']
    assert run(argv) == 0
    rows = list(csv.DictReader((tmp_path / 'o/alpha.csv').open()))
    assert len(rows) == 3 * 2 and rows[0].keys() == {
        'image',
        'mean_abs_defocus_px',
        'dmssrm',
        'alpha_1',
        'alpha_2',
        'alpha_3',
    }
    first_defocus = np.abs(np.load(tmp_path / 'val/defocus/000000.npy')).mean()
    assert float(rows[0]['mean_abs_defocus_px']) == pytest.approx(first_defocus, abs=1e-4)
    assert all(sum(float(r[f'alpha_{j}']) for j in (1, 2, 3)) == pytest.approx(1, abs=1e-5) for r in rows)
    assert (tmp_path / 'o/alpha_vs_blur.png').read_bytes().startswith(PNG_SIGNATURE)


def test_without_defocus_maps_the_blur_is_the_blurred_psnr(tmp_path, options):
    generate_dataset(tmp_path / 'val', 2, size=(32, 32), seed=4, progress=False)
    for path in (tmp_path / 'val/defocus').iterdir():
        path.unlink()
    (tmp_path / 'val/defocus').rmdir()
    assert run(['-opt', options, '--input', tmp_path / 'val', '--output', tmp_path / 'o']) == 0  # untrained
    rows = list(csv.DictReader((tmp_path / 'o/alpha.csv').open()))
    assert 'blurred_psnr_db' in rows[0] and 10 < float(rows[0]['blurred_psnr_db']) < 80
