"""Dense ULM network: every site of every grid, plain torch tensors."""

from __future__ import annotations

import torch

from blockrecon.ulm.nets.architecture import UlmNet


class DenseUlmNet(UlmNet):
    """Dense twin of :class:`~blockrecon.ulm.nets.sparse.SparseUlmNet` (same parameters).

    ``forward(x)``: x float (B, 2, T, *S) -> dict {scale: logits (B, T, *(scale * S))} for the
    scales (1, 2, 4, 8); the 8x map is the network's per-frame occupancy prediction.
    """

    mode = "dense"

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError("input must be a real floating-point tensor (B, 2, T, *S)")
        if x.ndim != 3 + self.config.spatial_dims:
            raise ValueError(
                f"input must have shape (B, 2, T, *S) with "
                f"{self.config.spatial_dims} spatial axes, got {tuple(x.shape)}"
            )
        self.check_grid(tuple(x.shape[:2]), tuple(x.shape[2:]))
        return self._run(x)

    def _cat(self, a, b):
        return torch.cat([a, b], dim=1)

    def _squeeze_head(self, logits):
        return logits[:, 0]
