"""What DMTNet's dynamic multi-scale selection chose (the paper's Figure 5), for one pair or a whole test set.

    python scripts/visualize_scales.py -opt options/test_DMTNet_B.yml [--weights W.pth] \
        --left L.png --right R.png --output figure5.png            # one pair: alpha and per-scale features
    python scripts/visualize_scales.py -opt options/test_DMTNet_B.yml [--weights W.pth] \
        --input datasets/synthetic/val --output alpha_dir/          # a test set: alpha.csv and alpha_vs_blur.png

A test set is the inputL/inputR/target layout (blur: the synthetic generator's defocus maps when there is a
defocus/ folder, else the blurred image's PSNR against the target) or the DPDD layout (--split). Without weights
(none configured, or --untrained) it still runs and the titles say the weights are untrained.
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)

# isort: split
from basicsr.archs import build_network  # noqa: E402  (after the plugin: its compat fixes come first)

from dmtnet_arch.tools.inference import add_network_arguments, load_network, read_options, resolve_device  # noqa: E402
from dmtnet_arch.tools.inference_io import pairs_from_arguments, read_input, write_alpha_csv  # noqa: E402
from dmtnet_arch.tools.scale_analysis import BLUR_MEASURES, read_test_image, scale_features, test_set_samples  # noqa: E402
from dmtnet_arch.utils.img_util import tensor2img  # noqa: E402
from dmtnet_arch.utils.plot_util import alpha_against_blur, figure5  # noqa: E402

log = logging.getLogger('dmtnet_arch.visualize_scales')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_network_arguments(parser)  # -opt: a DMTNet S, B, L or H
    parser.add_argument('--untrained', action='store_true', help='ignore any weights: random initialisation')
    parser.add_argument('--left', help='left view of one pair (Figure 5)')
    parser.add_argument('--right', help='right view of one pair')
    parser.add_argument('--input', help='test set folder (CSV of alpha and alpha against blur)')
    parser.add_argument('--split', default='test', help='DPDD split (default test)')
    parser.add_argument('--output', required=True, help='PNG for one pair; folder for a test set')
    parser.add_argument('--features', choices=('mean', 'pca'), default='mean', help='channel mean or 3-component PCA')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:N or auto')
    return parser


def network_and_label(args) -> tuple[torch.nn.Module, str]:
    """The network with its weights, or untrained (said in the returned label) when none are configured."""
    options = read_options(args.opt)
    weights = None if args.untrained else args.weights or (options.get('path') or {}).get('pretrain_network_g')
    network_options = options['network_g']
    label = f'{network_options["type"]}-{network_options.get("variant", "")}'.rstrip('-')
    if weights:
        net, _ = load_network(args.opt, weights, args.param_key)
        return net, f'{label}, weights {Path(weights).name}'
    log.warning('no weights: the network is untrained (random initialisation); the figures say so')
    torch.manual_seed(0)
    return build_network(dict(network_options)).eval(), f'{label}, UNTRAINED weights'


def one_pair(args, net, label):
    samples, problems = pairs_from_arguments(args.left, args.right)
    if problems:
        raise ValueError('; '.join(problems))
    pair = read_input(samples[0], 6)
    lq = torch.from_numpy(pair.lq)
    output, stages = scale_features(net, lq.to(args.device))
    left, right = lq[0, :3], lq[0, 3:]
    blurred = tensor2img((left + right) / 2)
    sharp = tensor2img(output.clamp(0, 1))
    alphas = ', '.join('(' + ', '.join(f'{a:.3f}' for a in stage.alpha) + ')' for stage in stages)
    figure5(args.output, blurred, sharp, stages, f'{pair.name}: {label}; alpha per DMSSRM {alphas}', args.features)
    print(f'wrote {args.output} ({label}): alpha per DMSSRM {alphas}')


def test_set(args, net, label):
    samples, blur_label = test_set_samples(args.input, args.split)
    alphas, blur = {}, {}
    for sample in tqdm(samples, unit='image', desc='Scale weights'):
        image = read_test_image(sample, args.input, blur_label)
        _, stages = scale_features(net, image.lq.to(args.device))
        alphas[image.name] = np.stack([stage.alpha for stage in stages])
        blur[image.name] = image.blur
    out = Path(args.output)
    write_alpha_csv(out / 'alpha.csv', alphas, blur, blur_label)
    names = list(alphas)
    alpha_against_blur(
        out / 'alpha_vs_blur.png',
        [blur[n] for n in names],
        np.stack([alphas[n] for n in names]),
        BLUR_MEASURES[blur_label],
        f'{label}: alpha against blur, {len(names)} images of {args.input}',
    )
    print(f'wrote {out / "alpha.csv"} and {out / "alpha_vs_blur.png"} ({len(names)} images; blur: {blur_label})')


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s')
    if bool(args.input) == bool(args.left or args.right):
        parser.error('give --left and --right (one pair), or --input (a test set)')
    args.device = resolve_device(args.device)
    net, label = network_and_label(args)
    net = net.to(args.device)
    (test_set if args.input else one_pair)(args, net, label)
    return 0


if __name__ == '__main__':
    sys.exit(main())
