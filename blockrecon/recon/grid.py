"""Gridding reconstruction: density-compensated adjoint SENSE."""

from __future__ import annotations

import torch

from blockrecon.physics.dcf import pipe_menon_dcf
from blockrecon.physics.validation import check_weights
from blockrecon.recon._common import sense_operator


def grid_recon(
    kspace: torch.Tensor,
    coord: torch.Tensor,
    maps: torch.Tensor,
    dcf: torch.Tensor | None = None,
    backend: str = "auto",
    progress: bool = True,
) -> torch.Tensor:
    """``x = sum_c conj(S_c) F^H (w * y_c) / sum_c |S_c|^2`` (0 where the maps vanish).

    With the unit-scaled Pipe-Menon weights of :func:`~blockrecon.physics.dcf.pipe_menon_dcf`
    the result is at the object's scale (a smooth object is returned at unit gain).

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        coord: float ``(..., ndim)`` in grid units.
        maps: complex ``(coils, *image_shape)``.
        dcf: real non-negative weights broadcastable to ``coord.shape[:-1]``; ``None`` computes
            Pipe-Menon weights.
        backend: NUFFT backend.
        progress: progress bar for the DCF iteration.

    Returns:
        complex64 image ``image_shape``.
    """
    sense = sense_operator(kspace, coord, maps, backend=backend)
    if dcf is None:
        dcf = pipe_menon_dcf(coord, sense.image_shape, backend=backend, progress=progress)
    check_weights(dcf, coord.shape[:-1], name="dcf")
    with torch.no_grad():
        image = sense.adjoint(kspace.to(torch.complex64) * dcf.to(kspace.device))
        sensitivity = sense.maps.abs().pow(2).sum(0)
        floor = 1e-6 * float(sensitivity.max())
        return torch.where(sensitivity > floor, image / sensitivity.clamp_min(floor), 0)
