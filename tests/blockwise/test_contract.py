"""The tiling contract: networks that do not declare it, or pool statistics over space, are
refused by name."""

from __future__ import annotations

import pytest
from blockwise_nets import small_net as _net
from torch import nn

from blockrecon.blockwise import BlockwiseRegularizer


class NoContract(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(
    "make",
    [
        lambda: BlockwiseRegularizer(NoContract(), 4),
        lambda: BlockwiseRegularizer(nn.Sequential(nn.BatchNorm3d(2)), 4),
    ],
)
def test_missing_contract_is_named(make):
    with pytest.raises(ValueError, match="tiling contract"):
        make()


def test_normalisation_layers_are_rejected():
    net = _net("resnet")
    net.body.insert(1, nn.InstanceNorm3d(4))
    with pytest.raises(ValueError, match="InstanceNorm3d"):
        BlockwiseRegularizer(net, 4)


@pytest.mark.parametrize(
    "attribute, value, match",
    [
        ("receptive_field", 4, "receptive_field must be odd"),
        ("receptive_field", 0, "receptive_field must be a positive integer"),
        ("stride", 1.0, "stride must be a positive integer"),
        ("margin", -1, "margin must be a non-negative integer"),
    ],
)
def test_bad_contract_values_are_named(attribute, value, match):
    net = _net("resnet")
    setattr(net, attribute, value)
    with pytest.raises(ValueError, match=f"ResNet3d.{match}"):
        BlockwiseRegularizer(net, 4)
