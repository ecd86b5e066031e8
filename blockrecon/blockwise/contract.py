"""The tiling contract a network declares so that it can be applied patch by patch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from blockrecon.checks import check_positive_int

CONTRACT_ATTRIBUTES = ("margin", "receptive_field", "stride", "input_size")

#: Layers whose output depends on statistics over the whole spatial extent.
SPATIAL_STATISTICS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


@dataclass(frozen=True)
class TilingContract:
    """What a tiling-capable network declares.

    Attributes:
        margin: voxels cropped on each side by valid convolutions (output = input - 2 * margin);
            0 for padded networks.
        receptive_field: odd width of the receptive field in voxels.
        stride: total down-sampling factor; patch cores and origins must be multiples of it.
        input_size: maps an output (core) size to the input size that produces it.
    """

    margin: int
    receptive_field: int
    stride: int
    input_size: Callable[[int], int]

    @property
    def radius(self) -> int:
        """Receptive-field radius: the halo a padded network needs for an exact interior."""
        return (self.receptive_field - 1) // 2

    @property
    def exact(self) -> bool:
        """True for valid-convolution networks, whose tiling is exact at the border too."""
        return self.margin > 0

    def default_halo(self) -> int:
        """The halo ``halo="auto"`` picks: the margin of a valid net, else the radius."""
        return self.margin if self.exact else self.radius


def tiling_contract(net: nn.Module) -> TilingContract:
    """Read and check the contract attributes of ``net``; ValueError names what is wrong."""
    name = type(net).__name__
    missing = [a for a in CONTRACT_ATTRIBUTES if not hasattr(net, a)]
    if missing:
        raise ValueError(
            f"{name} does not declare the tiling contract: missing {', '.join(missing)} "
            f"(needs {', '.join(CONTRACT_ATTRIBUTES)})"
        )
    margin, rf, stride = net.margin, net.receptive_field, net.stride
    check_positive_int(margin, f"{name}.margin", allow_zero=True)
    if check_positive_int(rf, f"{name}.receptive_field") % 2 != 1:
        raise ValueError(f"{name}.receptive_field must be odd, got {rf!r}")
    check_positive_int(stride, f"{name}.stride")
    if not callable(net.input_size):
        raise ValueError(f"{name}.input_size must be callable (core size -> input size)")
    pooled = [type(m).__name__ for m in net.modules() if isinstance(m, SPATIAL_STATISTICS)]
    if pooled:
        raise ValueError(
            f"{name} contains {', '.join(sorted(set(pooled)))}, which pool "
            "statistics over space; patches would not match the full volume"
        )
    return TilingContract(margin, rf, stride, net.input_size)
