"""The ULM detection network: a spatio-temporal encoder-decoder and a fine upsampling tail.

Input: a 2-channel (real, imag) block ``(B, 2, T, *S)`` (S = 2 or 3 spatial axes). Output:
per-frame occupancy logits on grids 1x, 2x, 4x and 8x finer in space, ``(B, T, *(s * S))``:
time is pooled in the encoder and restored by the decoder, so every frame gets its own map.

Layout (``c = channels``, ``f = fine_channels``; every block a factorized conv, see
:mod:`.layers`)::

    enc0  2 -> c0          at (T, S)              --pool (4, 2)-->
    enc1  c0 -> c1         at (T/4, S/2)          --pool (4, 2)-->
    enc2  c1 -> c2         at (T/16, S/4)
    up    c2 -> c1 onto enc1's sites, cat enc1, dec1 2c1 -> c1
    up    c1 -> c0 onto enc0's sites, cat enc0, dec0 2c0 -> c0, head (scale 1)
    3x:   up (1, 2) -> f, block f -> f, head (scales 2, 4, 8)

The dense network (:class:`DenseUlmNet`) and the sparse one (:class:`SparseUlmNet`) are the
same modules with different forwards, so their ``state_dict`` are interchangeable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from blockrecon.checks import check_positive_int
from blockrecon.ulm.nets.layers import FactorizedConv, PointwiseConv, Pool, Upsample

#: Upsampling stages after the decoder (each 2x in space): output grid 2^3 = 8x finer.
FINE_STAGES = 3
#: Occupancy heads' initial bias: sigmoid(-2) = 0.12, so an untrained sparse network keeps few
#: sites instead of all of them.
HEAD_BIAS = -2.0


@dataclass(frozen=True)
class UlmNetConfig:
    """Architecture of :class:`UlmNet`.

    Attributes:
        spatial_dims: 2 (input (B, 2, T, H, W)) or 3 (input (B, 2, T, D, H, W)).
        channels: encoder channels at the three scales (c0, c1, c2).
        fine_channels: channels of the upsampling tail.
        kernel_t: temporal kernel size (odd).
        pool_t, pool_s: encoder pooling in time and space (kernel == stride).
    """

    spatial_dims: int = 2
    channels: tuple[int, int, int] = (8, 16, 32)
    fine_channels: int = 8
    kernel_t: int = 3
    pool_t: int = 4
    pool_s: int = 2

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        channels = tuple(self.channels)
        if len(channels) != 3 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels must be 3 positive ints, got {self.channels}")
        object.__setattr__(self, "channels", channels)
        for name in ("fine_channels", "kernel_t", "pool_t", "pool_s"):
            check_positive_int(getattr(self, name), name)
        if self.kernel_t % 2 == 0:
            raise ValueError(f"kernel_t must be odd, got {self.kernel_t}")

    @property
    def scales(self) -> tuple[int, ...]:
        """Spatial refinement of each head's grid: (1, 2, 4, 8)."""
        return tuple(2**i for i in range(FINE_STAGES + 1))

    @property
    def divisors(self) -> tuple[int, int]:
        """(frames, spatial size) of a block must be multiples of these."""
        return self.pool_t**2, self.pool_s**2

    def to_dict(self) -> dict:
        return asdict(self)

    def check_data(self, iq_shape: tuple[int, ...], block_frames: int, name: str) -> None:
        """Before any work: IQ data of shape ``(frames, *spatial)`` (called ``name`` in the
        message) cut into blocks of ``block_frames`` frames suits this network: as many spatial
        axes, at least one whole block, and block sizes multiples of :attr:`divisors`.

        Raises:
            ValueError: naming the first mismatch.
        """
        d, div_t, div_s = len(iq_shape) - 1, *self.divisors
        if d != self.spatial_dims:
            raise ValueError(f"{name} is {d}D but the model is {self.spatial_dims}D")
        if block_frames > iq_shape[0]:
            raise ValueError(
                f"a block of {block_frames} frames is longer than {name} ({iq_shape[0]} frames)"
            )
        if block_frames % div_t:
            raise ValueError(f"the block frames ({block_frames}) must be a multiple of {div_t}")
        if any(s % div_s for s in iq_shape[1:]):
            raise ValueError(
                f"{name}: spatial size {tuple(iq_shape[1:])} must be multiples of {div_s} "
                "for the network"
            )


class UlmNet(nn.Module):
    """Modules of the network (see the module docstring); subclasses define ``forward``."""

    def __init__(self, config: UlmNetConfig | None = None):
        super().__init__()
        self.config = config = config or UlmNetConfig()
        d, (c0, c1, c2), f = config.spatial_dims, config.channels, config.fine_channels
        kt = config.kernel_t
        self.encoders = nn.ModuleList(
            [
                FactorizedConv(2, c0, d, kernel_t=kt),
                FactorizedConv(c0, c1, d, kernel_t=kt),
                FactorizedConv(c1, c2, d, kernel_t=kt),
            ]
        )
        self.pool = Pool(config.pool_t, config.pool_s, d)
        self.ups = nn.ModuleList(
            [
                Upsample(c2, c1, config.pool_t, config.pool_s, d),
                Upsample(c1, c0, config.pool_t, config.pool_s, d),
            ]
        )
        self.decoders = nn.ModuleList(
            [FactorizedConv(2 * c1, c1, d, kernel_t=kt), FactorizedConv(2 * c0, c0, d, kernel_t=kt)]
        )
        self.fine_ups = nn.ModuleList(
            [Upsample(c0 if i == 0 else f, f, 1, 2, d) for i in range(FINE_STAGES)]
        )
        self.fine_blocks = nn.ModuleList(
            [FactorizedConv(f, f, d, kernel_t=kt) for _ in range(FINE_STAGES)]
        )
        self.heads = nn.ModuleList(
            [PointwiseConv(c0, 1, d)] + [PointwiseConv(f, 1, d) for _ in range(FINE_STAGES)]
        )
        with torch.no_grad():
            for head in self.heads:
                head.conv.bias.fill_(HEAD_BIAS)

    def check_grid(self, batch_channels: tuple[int, int], grid: tuple[int, ...]) -> None:
        """Validate an input's (batch, channels) and grid (T, *S) against the architecture."""
        d = self.config.spatial_dims
        if len(grid) != 1 + d:
            raise ValueError(
                f"expected a (T, {', '.join('S' * d)}) grid for spatial_dims={d}, "
                f"got {len(grid)} grid axes"
            )
        if batch_channels[1] != 2:
            raise ValueError(f"input must have 2 channels (real, imag), got {batch_channels[1]}")
        div_t, div_s = self.config.divisors
        if grid[0] % div_t or any(s % div_s for s in grid[1:]):
            raise ValueError(
                f"block (T, *S) = {tuple(grid)} must have T a multiple of {div_t} "
                f"and spatial sizes multiples of {div_s}"
            )

    # -------------------------------------------------------------- shared forward pass
    def _layer(self, layer: nn.Module, *args):
        """Run ``layer``'s dense or sparse forward (``forward_<mode>``)."""
        return getattr(layer, f"forward_{self.mode}")(*args)

    def _cat(self, a, b):
        raise NotImplementedError

    def _prune(self, x, logits, keep_keys):
        """Sites kept for the next upsampling stage (dense networks keep everything)."""
        return x

    def _squeeze_head(self, logits):
        raise NotImplementedError

    def _run(self, x, keep_keys=None) -> dict:
        """Heads' logits per scale for an activation ``x`` of the input grid; ``keep_keys``
        ({scale: sorted int64 keys}, sparse only) are sites pruning must keep."""
        skips = []
        for i, encoder in enumerate(self.encoders):
            if i:
                x = self._layer(self.pool, x)
            x = self._layer(encoder, x)
            skips.append(x)
        for up, decoder, skip in zip(self.ups, self.decoders, skips[-2::-1], strict=True):
            x = self._layer(decoder, self._cat(self._layer(up, x, skip), skip))
        outputs = {}
        stages = [None, *zip(self.fine_ups, self.fine_blocks, strict=True)]
        for scale, head, stage in zip(self.config.scales, self.heads, stages, strict=True):
            if stage is not None:
                x = self._layer(stage[1], self._layer(stage[0], x))
            logits = self._layer(head, x)
            outputs[scale] = self._squeeze_head(logits)
            if scale != self.config.scales[-1]:
                x = self._prune(x, logits, None if keep_keys is None else keep_keys.get(scale))
        return outputs
