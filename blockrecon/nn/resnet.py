"""Residual 3D CNN regularizer that tiles exactly (valid convolutions).

The network follows the block-wise MBDL denoiser: ``n_layers`` 3x3x3 convolutions of
``width`` channels with ReLU between them, added to the input (residual learning). With
``valid=True`` (default) the convolutions are unpadded, so the output is smaller than the input by
``margin = n_layers * (kernel_size - 1) // 2`` voxels on each side and the residual adds the
centre-cropped input. A valid network applied to a once-padded volume gives exactly the same
values whatever way the volume is cut into patches (see :mod:`blockrecon.blockwise`).

Tiling contract (shared by every tiling-capable network in :mod:`blockrecon.nn`):

``margin``
    voxels cropped on each side (output = input - 2 * margin); 0 for padded networks.
``receptive_field``
    odd width of the receptive field; a patch needs a halo of ``(receptive_field - 1) // 2``.
``stride``
    total down-sampling factor (1 here); patch cores must be multiples of it.
``input_size(core)``
    input size that yields an output of size ``core``.
"""

from __future__ import annotations

import torch
from torch import nn

from blockrecon.checks import check_positive_int


def center_crop(x: torch.Tensor, margin: int, spatial_dims: int) -> torch.Tensor:
    """Remove ``margin`` voxels on both sides of the last ``spatial_dims`` dimensions."""
    if margin == 0:
        return x
    index = (Ellipsis,) + (slice(margin, -margin),) * spatial_dims
    return x[index]


class ResNet3d(nn.Module):
    """Residual CNN on real channels: ``y = crop(x) + net(x)``.

    Args:
        channels: input and output channels (2 for a complex image as real/imaginary).
        width: feature channels of the hidden layers.
        n_layers: number of convolutions (>= 2).
        kernel_size: odd convolution kernel width.
        valid: unpadded convolutions (exact tiling) if True; zero-padded ("same") otherwise.

    Input ``(N, channels, D, H, W)`` float; output ``(N, channels, D - 2m, H - 2m, W - 2m)`` with
    ``m = self.margin`` (0 when ``valid=False``). No normalisation layers, so patches are
    independent.
    """

    dim = 3

    def __init__(
        self,
        channels: int = 2,
        width: int = 32,
        n_layers: int = 5,
        kernel_size: int = 3,
        valid: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"n_layers must be >= 2, got {n_layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        check_positive_int(channels, "channels")
        check_positive_int(width, "width")
        pad = 0 if valid else kernel_size // 2
        widths = [channels] + [width] * (n_layers - 1) + [channels]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Conv3d(c_in, c_out, kernel_size, padding=pad))
            if i < n_layers - 1:
                layers.append(nn.ReLU(inplace=False))
        self.body = nn.Sequential(*layers)
        radius = n_layers * (kernel_size // 2)
        self.valid = valid
        self.margin = radius if valid else 0
        self.receptive_field = 2 * radius + 1
        self.stride = 1

    def input_size(self, core: int) -> int:
        """Input size that yields an output of size ``core``."""
        return core + 2 * self.margin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"ResNet3d expects (N, C, D, H, W), got shape {tuple(x.shape)}")
        if any(s <= 2 * self.margin for s in x.shape[2:]):
            raise ValueError(
                f"ResNet3d input {tuple(x.shape[2:])} is too small for margin {self.margin}"
            )
        return center_crop(x, self.margin, 3) + self.body(x)
