"""Small float64 networks that honour the tiling contract, shared by the block-wise tests."""

from __future__ import annotations

import torch
from torch import nn

from blockrecon.nn import ResNet3d, UNet


def small_net(kind: str) -> nn.Module:
    """A seeded 3-layer ResNet3d (``"resnet"``) or depth-2 valid U-Net (``"unet"``)."""
    torch.manual_seed(0)
    if kind == "resnet":
        return ResNet3d(width=4, n_layers=3).double()
    return UNet(dim=3, in_ch=2, out_ch=2, base_width=2, depth=2, valid=True).double()
