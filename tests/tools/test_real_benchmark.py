"""The real-data benchmark: scene discovery, the swap of the views, the gains and margins, the CSV, the command."""

import csv
import shutil

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from dmtnet_arch.metrics.dual_pixel_metric import calculate_dp_psnr
from dmtnet_arch.tools.dp_statistics import BlockMeasurement, disc_kernel
from dmtnet_arch.tools.inference import Deblurrer
from dmtnet_arch.tools.real_benchmark import (
    BlurBreakdown,
    SceneScore,
    breakdown_csv,
    mean_score,
    run_benchmark,
    scenes_with_targets,
    score_outputs,
    scores_csv,
)
from dmtnet_arch.utils.img_util import read_image, write_image
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


def test_blur_breakdown_pools_block_errors_per_radius_bin():
    """Blocks are binned by their measured radius (a bin includes its lower edge) and each bin's PSNR is that of the
    mean squared error over its blocks; a bin without blocks and a missing swapped run are NaN, not zero."""
    target = np.zeros((8, 16, 3))
    blocks = [
        BlockMeasurement('s', 0, 0, 0.0, 0.5, 0.0, size=8),  # radius < 1
        BlockMeasurement('s', 0, 8, 1.0, 3.0, 0.0, size=8),  # radius 3: the 3-6 px bin
    ]
    breakdown = BlurBreakdown({'s': blocks})
    views = {'target': target, 'combined': np.full_like(target, 0.1), 'bits': 16}
    output = np.zeros((8, 16, 3), np.uint16)
    output[:, 8:] = 655  # 0.01 of full scale in the second block only
    breakdown.add('s', views, output)
    rows = {row.radius_low_px: row for row in breakdown.scores()}
    assert [row.blocks for row in rows.values()] == [1, 0, 1, 0, 0]
    assert rows[0.0].psnr_blurred == pytest.approx(20.0, abs=1e-3)  # MSE 0.01
    assert rows[0.0].psnr_output > 100 and np.isnan(rows[0.0].psnr_swapped)
    assert rows[3.0].gain == pytest.approx(40.0 - 20.0, abs=1e-2)  # MSE 1e-4 against 1e-2
    assert np.isnan(rows[1.0].psnr_blurred) and np.isnan(rows[1.0].gain)
    breakdown.add('s', views, output)  # a second scene with the same errors leaves every PSNR where it was
    assert breakdown.scores()[3 - 1].psnr_blurred == pytest.approx(20.0, abs=1e-3)
    lines = breakdown_csv(breakdown.scores()).decode().splitlines()
    assert lines[1].startswith('0,1,2,') and lines[2] == '1,3,0,,,,,' and lines[-1].startswith('10,inf,0,')


def test_blur_breakdown_measures_the_scene_s_blocks(tmp_path):
    """A scene blurred by a disc of radius 4 with views shifted 2 px apart: its blocks land in the 3-6 px bin, and
    the bin's numbers are the block errors of the blurred view and of the network's output (the first view)."""
    rng = np.random.default_rng(3)
    target = rng.random((96, 160, 3))
    combined = np.clip(cv2.filter2D(target, -1, disc_kernel(4.0), borderType=cv2.BORDER_REFLECT_101), 0, 1)
    views = {
        'target': target,
        'inputC': combined,
        'inputL': np.roll(combined, -1, 1),
        'inputR': np.roll(combined, 1, 1),
    }
    for folder, image in views.items():
        write_image(tmp_path / folder / 'scene.png', np.round(image * 255).astype(np.uint8))
    breakdown = BlurBreakdown()
    run_benchmark(Deblurrer(FirstView()), scenes_with_targets(tmp_path), breakdown=breakdown)
    rows = breakdown.scores()
    measured = breakdown.scene_blocks['scene']
    assert measured and {row.radius_low_px for row in rows if row.blocks} == {3.0}
    stored = {name: read_image(tmp_path / name / 'scene.png') / 255 for name in views}
    windows = [block.window for block in measured]
    blurred_mse = np.mean([np.mean((stored['inputC'][w] - stored['target'][w]) ** 2) for w in windows])
    output_mse = np.mean([np.mean((stored['inputL'][w] - stored['target'][w]) ** 2) for w in windows])
    assert rows[2].psnr_blurred == pytest.approx(10 * np.log10(1 / blurred_mse), abs=1e-6)
    assert rows[2].psnr_output == pytest.approx(10 * np.log10(1 / output_mse), abs=1e-6)
    csv_dir = tmp_path / 'scores'
    argv = ['--reference', str(tmp_path / 'inputL'), '--input', str(tmp_path), '--by-blur', '--csv-dir', str(csv_dir)]
    assert load_script('real_benchmark').main(argv) == 0  # the command: the first view as outputs made elsewhere
    by_blur = list(csv.DictReader((csv_dir / 'inputL_by_blur.csv').read_text().splitlines()))
    assert by_blur[2]['blocks'] == str(len(measured)) and by_blur[2]['psnr_swapped'] == ''
    assert float(by_blur[2]['psnr_output']) == pytest.approx(rows[2].psnr_output, abs=1e-4)


def test_outputs_made_elsewhere_have_no_swapped_run(scenes, tmp_path_factory):
    outputs = tmp_path_factory.mktemp('outputs')
    for sample in scenes_with_targets(scenes):
        shutil.copy(sample.target, outputs / f'{sample.name}.png')
    scores = score_outputs(scenes_with_targets(scenes), outputs)
    assert all(s.psnr_output > 100 and np.isnan(s.psnr_swapped) for s in scores)  # the target itself
    last = scores_csv(scores).decode().splitlines()[-1].split(',')
    assert last[5] == '' and last[-1] == ''  # the swapped columns are empty, not a made-up number


def test_models_get_unique_labels_so_no_file_overwrites_another():
    labels = load_script('real_benchmark').row_labels
    sources = [
        'exp/A/models/net_g_14000.pth',
        'exp/B/models/net_g_14000.pth',
        'synthetic-T',
        'out/dpdnet',
        'out/dpdnet',
    ]
    assert labels(sources) == ['A-models-net_g_14000', 'B-models-net_g_14000', 'synthetic-T', 'dpdnet', 'dpdnet-2']
    assert labels(['synthetic-T', 'w/net.pth']) == ['synthetic-T', 'net']  # nothing added where nothing clashes
    assert labels(['/a/net.pth', '/b/net.pth']) == ['a-net', 'b-net']  # never the root folder
    assert labels(['net.pth', 'net.pth', 'x/net-2.pth']) == ['net', 'net-2', 'net-2-2']
    assert labels(['w/net.pth', 'v/Net_by_blur.pth']) == ['net', 'Net_by_blur-2']  # net's --by-blur CSV name


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
    assert module.main([*argv, '--reference', str(scenes / 'inputL'), '--table', str(table), '--by-blur']) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [row['name'] for row in rows] == ['scene0', 'scene1', 'mean']
    assert all(row['psnr_swapped'] for row in rows)
    lines = table.read_text().splitlines()
    assert lines[2].startswith('| blurred combined view |') and lines[3].startswith('| net |')
    assert lines[4].startswith('| inputL |') and 'not run' in lines[4]  # outputs made elsewhere: one order only
    for label in ('net', 'inputL'):  # --by-blur: one row per radius bin (these noise scenes have no textured block)
        by_blur = list(csv.DictReader((folder / f'{label}_by_blur.csv').read_text().splitlines()))
        assert [row['radius_low_px'] for row in by_blur] == ['0', '1', '3', '6', '10']
