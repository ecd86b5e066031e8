"""U-Net (Ronneberger et al. 2015) in 2D or 3D, padded or with valid (unpadded) convolutions.

Architecture per level: two 3x3(x3) convolutions, each followed by ReLU (optionally
BatchNorm before the ReLU), max-pooling 2 on the way down, transposed convolution 2x2(x2)
stride 2 on the way up, skip features concatenated, a 1x1(x1) convolution as head. At
``base_width=64, depth=5`` in 2D this is the standard ~31.0M-parameter U-Net; base widths 4-8
keep under 2% of that.

Tiling contract read by the block-wise wrapper (see ``blockrecon.blockwise``):

``margin``
    voxels per side the network crops from its input: output size = input size - 2*margin.
    0 for the padded network.
``receptive_field``
    odd width such that a halo of ``(receptive_field - 1) // 2`` voxels around a stride-aligned
    core is all the network needs. For the valid network this is ``2*margin + 1``. For the padded
    network it is the true field: the widest one-sided extent of the dependence of one output
    voxel on the input, over all positions relative to the pooling grid, times two plus one.
``stride``
    total down-sampling factor ``2**(depth-1)``: cores and patch origins must be multiples of it.
``input_size(core)``
    the input size that gives an output of size ``core``.

With ``valid=True`` (the paper's overlap-tile strategy: unpadded convolutions, skip features
centre-cropped before concatenation, and for depth >= 4 a final 2-voxel crop so that the output
size is a multiple of the stride) the network applied to a crop of a once-padded volume whose
origin and core are multiples of ``stride`` gives exactly the same crop of the full output.

Normalization: ``norm=None`` (default) or ``"batch"``. Block-wise application requires
``norm=None`` (or a batch-normalized network in eval mode): BatchNorm in train mode pools
statistics over the patch, so patches no longer reproduce the full-volume output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from blockrecon.checks import check_positive_int

_NORMS = (None, "batch")


def _conv_block(dim: int, c_in: int, c_out: int, padding: int, norm: str | None) -> list:
    conv = (nn.Conv2d, nn.Conv3d)[dim - 2]
    layers = [conv(c_in, c_out, 3, padding=padding)]
    if norm == "batch":
        layers.append((nn.BatchNorm2d, nn.BatchNorm3d)[dim - 2](c_out))
    layers.append(nn.ReLU(inplace=True))
    return layers


class DoubleConv(nn.Sequential):
    """Two 3x3(x3) convolutions, each followed by (BatchNorm and) ReLU."""

    def __init__(self, dim: int, c_in: int, c_mid: int, c_out: int, padding: int, norm: str | None):
        super().__init__(
            *_conv_block(dim, c_in, c_mid, padding, norm),
            *_conv_block(dim, c_mid, c_out, padding, norm),
        )


def default_widths(base_width: int, depth: int) -> tuple[int, ...]:
    """Per-layer output channels of the standard U-Net, in construction order.

    Order: encoder levels 0..depth-2 (conv, conv), bottom (conv, conv), decoder levels
    depth-2..0 (up-convolution, conv, conv): ``5*depth - 3`` numbers.
    """
    enc = [base_width * 2**level for level in range(depth - 1) for _ in range(2)]
    bottom = [base_width * 2 ** (depth - 1)] * 2
    dec = [base_width * 2**level for level in reversed(range(depth - 1)) for _ in range(3)]
    return tuple(enc + bottom + dec)


def _center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop the trailing spatial dimensions of ``x`` to ``size`` around their centre.

    Written as negative padding, which Torch-Pruning's dependency graph traces through
    (it does not follow slicing into a concatenation).
    """
    pads = []
    for n, s in zip(reversed(x.shape[2:]), reversed(list(size)), strict=True):
        pads += [-((n - s) // 2), -(n - s - (n - s) // 2)]
    return F.pad(x, pads)


class UNet(nn.Module):
    """U-Net for ``dim``-dimensional inputs of shape (batch, in_ch, *spatial), float32.

    Args:
        dim: 2 or 3 spatial dimensions.
        in_ch: input channels.
        out_ch: output channels (classes for segmentation, 2 for a complex image).
        base_width: channels at the first level, doubled at each level down.
        depth: number of resolution levels (``depth - 1`` poolings), at least 1.
        valid: unpadded convolutions (exact tiling, output smaller than the input).
        norm: ``None`` or ``"batch"``.
        widths: per-layer output channels overriding ``base_width`` (see
            :func:`default_widths`); used to rebuild structurally pruned networks.
    """

    def __init__(
        self,
        dim: int = 2,
        in_ch: int = 1,
        out_ch: int = 2,
        base_width: int = 64,
        depth: int = 5,
        valid: bool = False,
        norm: str | None = None,
        widths: Sequence[int] | None = None,
    ):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        for name, value in (
            ("depth", depth),
            ("in_ch", in_ch),
            ("out_ch", out_ch),
            ("base_width", base_width),
        ):
            check_positive_int(value, name)
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        widths = tuple(default_widths(base_width, depth) if widths is None else widths)
        if len(widths) != 5 * depth - 3 or min(widths) < 1:
            raise ValueError(
                f"widths must be {5 * depth - 3} positive integers for depth {depth}, got {widths}"
            )
        self.dim, self.in_ch, self.out_ch = dim, in_ch, out_ch
        self.base_width, self.depth, self.valid, self.norm = base_width, depth, bool(valid), norm
        self.stride = 2 ** (depth - 1)
        # depth >= 4: a valid net's raw output size is 4 mod stride; crop 2 per side.
        self._final_crop = 2 if valid and depth >= 4 else 0
        self.margin = (3 * 2**depth - 4 + self._final_crop) if valid else 0
        self.receptive_field = 2 * self.margin + 1 if valid else 2 * (7 * self.stride - 5) + 1
        self._build(widths)

    def _build(self, widths: tuple[int, ...]) -> None:
        dim, depth, pad, norm = self.dim, self.depth, 0 if self.valid else 1, self.norm
        w = iter(widths)
        self.encoders = nn.ModuleList()
        c = self.in_ch
        skips = []
        for _ in range(depth - 1):
            mid, out = next(w), next(w)
            self.encoders.append(DoubleConv(dim, c, mid, out, pad, norm))
            skips.append(out)
            c = out
        self.pool = (nn.MaxPool2d, nn.MaxPool3d)[dim - 2](2)
        mid, out = next(w), next(w)
        self.bottom = DoubleConv(dim, c, mid, out, pad, norm)
        c = out
        upconv = (nn.ConvTranspose2d, nn.ConvTranspose3d)[dim - 2]
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for skip in reversed(skips):
            up, mid, out = next(w), next(w), next(w)
            self.ups.append(upconv(c, up, 2, stride=2))
            self.decoders.append(DoubleConv(dim, up + skip, mid, out, pad, norm))
            c = out
        self.head = (nn.Conv2d, nn.Conv3d)[dim - 2](c, self.out_ch, 1)

    @property
    def widths(self) -> tuple[int, ...]:
        """Current per-layer output channels (reflects structural pruning)."""

        def outs(block: nn.Module) -> list[int]:
            return [m.out_channels for m in block if isinstance(m, nn.Conv2d | nn.Conv3d)]

        encoders = [c for blk in self.encoders for c in outs(blk)]
        decoders = []
        for up, blk in zip(self.ups, self.decoders, strict=True):
            decoders += [up.out_channels, *outs(blk)]
        return tuple(encoders + outs(self.bottom) + decoders)

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (pruned widths included)."""
        return {
            "dim": self.dim,
            "in_ch": self.in_ch,
            "out_ch": self.out_ch,
            "base_width": self.base_width,
            "depth": self.depth,
            "valid": self.valid,
            "norm": self.norm,
            "widths": list(self.widths),
        }

    def input_size(self, core: int | Sequence[int]) -> int | tuple[int, ...]:
        """Input size (per dimension) whose output has size ``core``.

        Raises:
            ValueError: ``core`` is not a positive multiple of ``stride``.
        """
        cores = (core,) if isinstance(core, int) else tuple(core)
        for c in cores:
            if not isinstance(c, int) or c < 1 or c % self.stride:
                raise ValueError(
                    f"core size must be a positive multiple of the stride {self.stride}, got {core}"
                )
        sizes = tuple(c + 2 * self.margin for c in cores)
        return sizes[0] if isinstance(core, int) else sizes

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_ch:
            raise ValueError(
                f"expected input of shape (batch, {self.in_ch}, "
                f"{', '.join(['n'] * self.dim)}), got {tuple(x.shape)}"
            )
        for n in x.shape[2:]:
            core = n - 2 * self.margin
            if core < 1 or core % self.stride:
                hint = (
                    (
                        f"input size must be 2*margin ({2 * self.margin}) plus a positive "
                        f"multiple of {self.stride}"
                    )
                    if self.valid
                    else f"input size must be a multiple of {self.stride}"
                )
                raise ValueError(f"incompatible spatial size {tuple(x.shape[2:])}: {hint}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_ch, *n) -> (batch, out_ch, *(n - 2*margin))."""
        self._check_input(x)
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips), strict=True):
            x = up(x)
            if self.valid:
                skip = _center_crop(skip, x.shape[2:])
            x = dec(torch.cat([skip, x], dim=1))
        if self._final_crop:
            x = _center_crop(x, [n - 2 * self._final_crop for n in x.shape[2:]])
        return self.head(x)
