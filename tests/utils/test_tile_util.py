"""utils/tile_util.py: raised-cosine blending sums to one, shows no seam, and stitches pointwise networks exactly."""

import pytest
import torch
from torch import nn

from dmtnet_arch.utils.tile_util import ramp_array, tiled_forward, window_array, window_starts


class ConstantOutput(nn.Module):
    """Every pixel of every tile gets the same value: any seam would come from the blending alone."""

    def forward(self, x):
        return torch.full((x.shape[0], 3, *x.shape[-2:]), 0.7)


class TileMean(nn.Module):
    """Each tile's output is its own mean colour: the worst case of a network that sees only its tile."""

    def forward(self, x):
        return x[:, :3].mean(dim=(2, 3), keepdim=True).expand(-1, -1, *x.shape[-2:])


def test_ramps_of_two_neighbours_sum_to_one():
    ramp = torch.from_numpy(ramp_array(16))
    torch.testing.assert_close(ramp + ramp.flip(0), torch.ones(16))
    assert 0 < ramp[0] < 0.01 and 0.99 < ramp[-1] < 1


@pytest.mark.parametrize(('length', 'tile', 'overlap'), [(224, 64, 16), (100, 40, 10)])
def test_raw_windows_sum_to_one_where_tiles_overlap_by_the_overlap(length, tile, overlap):
    starts = window_starts(length, tile, tile - overlap)
    assert starts[0] == 0 and starts[-1] == length - tile
    total = torch.zeros(length)
    for start in starts:
        total[start : start + tile] += torch.from_numpy(window_array(tile, start, length, overlap))
    if (length - tile) % (tile - overlap) == 0:  # regular grid: sin^2 + cos^2, no normalisation needed
        torch.testing.assert_close(total, torch.ones(length))
    assert total.min() > 0.5  # every pixel well covered; tiled_forward divides by this sum


@pytest.mark.parametrize(('height', 'width'), [(100, 130), (64, 64), (33, 200)])
def test_constant_network_gives_a_constant_image(height, width):
    out = tiled_forward(ConstantOutput(), torch.rand(1, 6, height, width), 48, 12)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))


@pytest.mark.parametrize(('height', 'width', 'tile', 'overlap'), [(37, 53, 16, 4), (64, 64, 32, 8), (20, 90, 32, 0)])
def test_pointwise_network_is_stitched_exactly(height, width, tile, overlap):
    torch.manual_seed(0)
    net = nn.Conv2d(6, 3, 1).eval()
    x = torch.rand(2, 6, height, width)
    with torch.no_grad():
        torch.testing.assert_close(tiled_forward(net, x, tile, overlap), net(x), rtol=1e-5, atol=1e-6)


def test_tiles_that_disagree_meet_without_a_step():
    """Tiles of very different content: the blend crosses the overlap in small steps instead of one jump."""
    x = torch.zeros(1, 6, 32, 160)
    x[..., 80:] = 1.0
    tile, overlap = 64, 32
    out = tiled_forward(TileMean(), x, tile, overlap)[0, 0, 0]
    jumps = (out[1:] - out[:-1]).abs()
    tile_means = [x[0, 0, 0, s : s + tile].mean() for s in window_starts(160, tile, tile - overlap)]
    largest_disagreement = max(abs(a - b) for a, b in zip(tile_means, tile_means[1:], strict=False))
    assert largest_disagreement > 0.4
    # a raised-cosine ramp over `overlap` pixels changes by at most pi / (2 * overlap) of the disagreement per pixel
    assert jumps.max() <= largest_disagreement * torch.pi / (2 * overlap) + 1e-6


@pytest.mark.parametrize(('tile', 'overlap'), [(8, 8), (8, -1), (0, 0)])
def test_bad_tiling_options_are_named(tile, overlap):
    with pytest.raises(ValueError, match='tile'):
        tiled_forward(ConstantOutput(), torch.rand(1, 6, 8, 8), tile, overlap)
