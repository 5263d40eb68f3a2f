"""tools/complexity.py: parameters and MACs of every DMTNet variant within the targets of the paper's Table 1."""

import pytest

import dmtnet_arch  # noqa: F401
from dmtnet_arch.archs.dmtnet_arch import DMTNet
from dmtnet_arch.tools.complexity import count_macs, count_parameters
from dmtnet_arch.tools.published import DMTNET_COMPLEXITY

# counting the two largest variants takes several seconds each: make test counts them, make test-fast does not
VARIANTS = [pytest.param(v, marks=pytest.mark.slow) if v in ('L', 'H') else v for v in DMTNET_COMPLEXITY]


@pytest.mark.parametrize('variant', VARIANTS)
def test_complexity_within_table1_targets(variant):
    paper_params, paper_gmacs = DMTNET_COMPLEXITY[variant]
    net = DMTNet(variant=variant)
    params = count_parameters(net) / 1e6
    gmacs = count_macs(net, (1, 6, 1120, 1680)) / 1e9
    assert abs(params - paper_params) / paper_params <= (0.05 if variant == 'T' else 0.03)
    assert abs(gmacs - paper_gmacs) / paper_gmacs <= 0.15
