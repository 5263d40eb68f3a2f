"""What importing the plugin registers: every plugin network records the options that built it (explicitly
decorated in its own file), while BasicSR's own networks are left as they are."""

from basicsr.utils.registry import ARCH_REGISTRY

import dmtnet_arch  # noqa: F401  (registers the plugin)
from dmtnet_arch.archs.dpdnet_arch import DPDNet


def plugin_archs() -> dict:
    return {name: arch for name, arch in ARCH_REGISTRY if arch.__module__.startswith('dmtnet_arch.archs.')}


def test_every_plugin_network_records_its_build_options():
    archs = plugin_archs()
    assert {'DMTNet', 'Restormer', 'IFAN', 'DPDNet'} <= set(archs)
    assert all(getattr(arch.__init__, 'records_options', False) for arch in archs.values())
    options = DPDNet(base_channels=4).build_options  # the defaults filled in
    assert options == {'type': 'DPDNet', 'base_channels': 4, 'dropout_rate': 0.4, 'in_channels': 6, 'out_channels': 3}


def test_basicsr_networks_are_not_wrapped():
    others = [arch for name, arch in ARCH_REGISTRY if not arch.__module__.startswith('dmtnet_arch.')]
    assert others
    assert not any(getattr(arch.__init__, 'records_options', False) for arch in others)
