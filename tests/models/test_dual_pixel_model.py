"""DualPixelModel pieces that need no training run: tiled inference, per-category summaries, crop-size check."""

import pytest
import torch
from torch import nn

import dmtnet_arch  # noqa: F401
from dmtnet_arch.models.dual_pixel_model import summarise, tiled_forward
from tests.helpers import training_model_options


class LeftViewColours(nn.Module):
    """A pointwise network: every output pixel depends on its own input pixel only."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        return self.mix(x)


@pytest.mark.parametrize(('height', 'width', 'tile', 'overlap'), [(37, 53, 16, 4), (64, 64, 32, 8), (20, 90, 32, 0)])
def test_tiles_stitch_back_to_the_full_output(height, width, tile, overlap):
    torch.manual_seed(0)
    net = LeftViewColours().eval()
    x = torch.rand(2, 6, height, width)
    with torch.no_grad():
        torch.testing.assert_close(tiled_forward(net, x, tile, overlap), net(x), rtol=1e-5, atol=1e-6)


def test_tile_overlap_must_be_smaller_than_the_tile():
    with pytest.raises(ValueError, match='tile_overlap'):
        tiled_forward(LeftViewColours(), torch.rand(1, 6, 8, 8), tile=8, overlap=8)


def test_summary_per_category_and_combined():
    records = [
        {'image': 'a', 'category': 'indoor', 'psnr': 30.0},
        {'image': 'b', 'category': 'indoor', 'psnr': 20.0},
        {'image': 'c', 'category': 'outdoor', 'psnr': 10.0},
    ]
    summary = summarise(records, ['psnr'])
    assert summary == {'combined': {'psnr': 20.0}, 'indoor': {'psnr': 25.0}, 'outdoor': {'psnr': 10.0}}
    assert summarise([{'image': 'a', 'category': '', 'psnr': 1.0}], ['psnr']) == {'combined': {'psnr': 1.0}}


def test_training_crops_smaller_than_the_network_takes_are_refused():
    from basicsr.models import build_model

    network = {'type': 'DMTNet', 'variant': 'T', 'num_transformer_blocks': 1, 'upsampler_channels': 8}
    train = {
        'pixel_opt': {'type': 'CharbonnierLoss', 'eps': 1e-6},
        'optim_g': {'type': 'Adam', 'lr': 1e-4},
        'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [10], 'restart_weights': [1]},
    }
    opt = training_model_options(network, train, {'train': {'gt_size': 16}})
    with pytest.raises(ValueError, match=r'gt_size 16 is smaller than the 32 x 32 pixels DMTNet works on'):
        build_model(opt)
    opt['datasets']['train']['gt_size'] = 32
    assert type(build_model(opt)).__name__ == 'DualPixelModel'
