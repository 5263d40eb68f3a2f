"""The real-data benchmark: scene discovery, the swap of the views, the gains and margins, the CSV, the command."""

import csv
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr
from dmtnet_arch.tools.inference import Deblurrer
from dmtnet_arch.tools.real_benchmark import (
    SceneScore,
    mean_score,
    run_benchmark,
    scenes_with_targets,
    score_outputs,
    scores_csv,
)
from dmtnet_arch.utils.img_util import write_image
from tests.helpers import load_script


class FirstView(nn.Module):
    """Returns the first three input channels: the view given first."""

    in_channels = 6

    def forward(self, x):
        return x[:, :3]


def noisy(target, seed, amount):
    rng = np.random.default_rng(seed)
    return np.clip(target.astype(np.int32) + rng.integers(-amount, amount + 1, target.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def scenes(tmp_path):
    """Two scenes: the left view is the target plus a little noise, the right view plus a lot."""
    rng = np.random.default_rng(0)
    for index in range(2):
        target = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
        views = {'target': target, 'inputL': noisy(target, index, 3), 'inputR': noisy(target, index + 10, 40)}
        views['inputC'] = ((views['inputL'].astype(np.uint16) + views['inputR']) // 2).astype(np.uint8)
        for folder, image in views.items():
            write_image(tmp_path / folder / f'scene{index}.png', image)
    return tmp_path


def psnr_of(folder, view, name):
    from dmtnet_arch.utils.img_util import read_image

    return calculate_dp_psnr(read_image(folder / view / name), read_image(folder / 'target' / name), protocol='float')


def test_scores_follow_the_view_order_and_the_swap(scenes):
    scores = run_benchmark(Deblurrer(FirstView()), scenes_with_targets(scenes))
    assert [s.name for s in scores] == ['scene0', 'scene1']
    for score in scores:
        name = f'{score.name}.png'
        assert score.psnr_output == pytest.approx(psnr_of(scenes, 'inputL', name), abs=1e-4)
        assert score.psnr_swapped == pytest.approx(psnr_of(scenes, 'inputR', name), abs=1e-4)
        assert score.psnr_blurred == pytest.approx(psnr_of(scenes, 'inputC', name), abs=1e-4)
        assert score.order_margin > 5  # the clean view first is much better than the noisy one first


def test_gain_margin_and_mean_arithmetic():
    scores = [SceneScore('a', 20.0, 0.5, 23.0, 0.7, 21.0, 0.6), SceneScore('b', 30.0, 0.8, 31.0, 0.9, 31.5, 0.85)]
    assert (scores[0].gain, scores[0].gain_swapped, scores[0].order_margin) == (3.0, 1.0, 2.0)
    assert scores[1].order_margin == -0.5
    mean = mean_score(scores)
    assert (mean.psnr_blurred, mean.psnr_output, mean.gain, mean.order_margin) == (25.0, 27.0, 2.0, 0.75)
    rows = list(csv.DictReader(scores_csv(scores).decode().splitlines()))
    assert [row['name'] for row in rows] == ['a', 'b', 'mean']
    assert rows[2]['gain'] == '2.0000' and rows[2]['order_margin'] == '0.7500'


def test_outputs_made_elsewhere_have_no_swapped_run(scenes, tmp_path_factory):
    outputs = tmp_path_factory.mktemp('outputs')
    for sample in scenes_with_targets(scenes):
        shutil.copy(sample.target, outputs / f'{sample.name}.png')
    scores = score_outputs(scenes_with_targets(scenes), outputs)
    assert all(s.psnr_output > 100 and np.isnan(s.psnr_swapped) for s in scores)  # the target itself
    last = scores_csv(scores).decode().splitlines()[-1].split(',')
    assert last[5] == '' and last[-1] == ''  # the swapped columns are empty, not a made-up number


def test_a_folder_without_targets_is_named(tmp_path):
    (tmp_path / 'inputL').mkdir()
    (tmp_path / 'inputR').mkdir()
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        scenes_with_targets(tmp_path)


def test_command_writes_the_csv_with_a_checkpoint_s_own_record(scenes, tmp_path_factory):
    """No option file: the checkpoint's built_with record builds the network."""
    from dmtnet_arch.archs.dmtnet_arch import DMTNet
    from dmtnet_arch.utils.checkpoint import RECORD_KEY, network_record

    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    net = DMTNet(variant='T', num_transformer_blocks=1, num_rbm=1, num_rm=1, upsampler_channels=16)
    torch.save({'params': net.state_dict(), RECORD_KEY: network_record(net)}, folder / 'net.pth')
    module = load_script('real_benchmark')
    out = folder / 'net.csv'
    argv = ['--weights', str(folder / 'net.pth'), '--input', str(scenes), '--csv-dir', str(folder), '--device', 'cpu']
    table = folder / 'table.md'
    assert module.main([*argv, '--reference', str(scenes / 'inputL'), '--table', str(table)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [row['name'] for row in rows] == ['scene0', 'scene1', 'mean']
    assert all(row['psnr_swapped'] for row in rows)
    lines = table.read_text().splitlines()
    assert lines[2].startswith('| blurred combined view |') and lines[3].startswith('| net |')
    assert lines[4].startswith('| inputL |') and 'not run' in lines[4]  # outputs made elsewhere: one order only
