"""Parameters and GMACs of every DMTNet variant and both Table 2 ablations against Table 1.

MACs are torch.utils.flop_counter FLOPs / 2 at 1680 x 1120 (the DPDD resolution), counted on the meta device.
Prints the table and writes it to docs/complexity.md.
"""

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dmtnet_arch, not an installed copy

import dmtnet_arch  # noqa: E402,F401  (registers the plugin before basicsr builds networks)
from dmtnet_arch.archs.dmtnet_arch import DMTNet  # noqa: E402
from dmtnet_arch.tools.complexity import count_macs, count_parameters  # noqa: E402
from dmtnet_arch.tools.published import DMTNET_COMPLEXITY  # noqa: E402
from dmtnet_arch.utils.file_util import write_bytes_atomically  # noqa: E402

ROWS = [(f'DMTNet-{v}', {'variant': v}, v) for v in DMTNET_COMPLEXITY] + [
    ('DMTNet-B, CNN features (Table 2)', {'variant': 'B', 'feature_extractor': 'cnn'}, None),
    ('DMTNet-B, fixed selection (Table 2)', {'variant': 'B', 'dynamic_selection': False}, None),
]


def deviation(value: float, reference: float) -> str:
    return f'{(value - reference) / reference * 100:+.1f}%'


def measure(height: int, width: int) -> list[list[str]]:
    """One table row per network: name, params, GMACs, paper values, deviations."""
    rows = []
    for name, options, paper_key in ROWS:
        net = DMTNet(**options)
        params = count_parameters(net) / 1e6
        gmacs = count_macs(net, (1, 6, height, width)) / 1e9
        paper_params, paper_gmacs = DMTNET_COMPLEXITY.get(paper_key, (None, None))
        row = [name, f'{params:.2f} M', f'{gmacs:.1f}']
        if paper_key:
            row += [f'{paper_params:.2f} M', f'{paper_gmacs:.2f}', deviation(params, paper_params)]
            row += [deviation(gmacs, paper_gmacs)]
        else:
            row += ['-', '-', '-', '-']
        rows.append(row)
        print(' | '.join(row), flush=True)
    return rows


def markdown(rows: list[list[str]], height: int, width: int) -> str:
    header = ['network', 'params', f'GMACs @{width}x{height}', 'paper params', 'paper GMACs', 'params dev', 'GMACs dev']
    lines = [
        '# Complexity against Table 1',
        '',
        f'Made by `python scripts/complexity.py` (torch {torch.__version__}). MACs = FLOPs / 2 from',
        '`torch.utils.flop_counter` on the meta device, one 6-channel input at the full DPDD resolution. The',
        "counter includes attention matmuls, which thop-style counters (likely the paper's) leave out; the input",
        f'is padded inside the network to a multiple of 32 ({width} -> {-(-width // 32) * 32}), counted too.',
        'Targets: parameters within 3% (T: 5%), GMACs within 15%. The paper gives no complexity for the ablations.',
        '',
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--height', type=int, default=1120)
    parser.add_argument('--width', type=int, default=1680)
    parser.add_argument('--out', default=str(ROOT / 'docs' / 'complexity.md'))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    rows = measure(args.height, args.width)
    write_bytes_atomically(args.out, markdown(rows, args.height, args.width).encode())
    print(f'written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
