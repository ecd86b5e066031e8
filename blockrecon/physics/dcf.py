"""Sampling density compensation (Pipe-Menon iteration) for non-Cartesian k-space.

The weights ``w`` solve Pipe and Menon's fixed point (MRM 41:179, 1999) ``(C w)_m = 1``: the
density-weighted sum of a small positive kernel around every sample is one. The kernel
convolution is done with the NUFFT, ``C w = A (psi * A^H w)``, where ``psi`` is a Gaussian image
window (``sigma = N/4`` voxels, so the k-space kernel is a Gaussian of about 0.64 grid units and
``psi = 1`` at the centre). With the unitary NUFFT scaling this gives ``w ~ 1/density``
(samples per unit k-space cell): a fully sampled Cartesian grid gets ``w = 1``, and the
DCF-weighted adjoint ``A^H (w * A x)`` returns a smooth image ``x`` at unit scale.
This is SigPy's ``pipe_menon_dcf`` idea with the NUFFT in place of its gridding operator, which
makes it about 20x faster here and fixes the scale of the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from blockrecon.checks import check_positive_int
from blockrecon.physics.nufft import NUFFT
from blockrecon.physics.validation import check_coord, check_image_shape
from blockrecon.progress import progress_bar

#: Standard deviation of the image-domain window, as a fraction of the image size.
WINDOW_SIGMA = 0.25


def _gaussian_window(image_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    window = torch.ones((), device=device)
    for dim, n in enumerate(image_shape):
        r = torch.arange(n, device=device, dtype=torch.float32) - n // 2
        view = [1] * len(image_shape)
        view[dim] = n
        window = window * torch.exp(-0.5 * (r / (WINDOW_SIGMA * n)) ** 2).reshape(view)
    return window.to(torch.complex64)


def pipe_menon_dcf(
    coord: torch.Tensor,
    image_shape: Sequence[int],
    n_iter: int = 30,
    backend: str = "auto",
    progress: bool = True,
) -> torch.Tensor:
    """Density compensation weights by the Pipe-Menon fixed-point iteration.

    Args:
        coord: float32 ``(..., ndim)`` in grid units, ``[-N/2, N/2]``.
        image_shape: image grid ``(nz, ny, nx)`` (or 2D) the coordinates refer to.
        n_iter: iterations (each costs one forward and one adjoint NUFFT).
        backend: NUFFT backend (see :class:`blockrecon.physics.nufft.NUFFT`).
        progress: show a progress bar (:func:`blockrecon.progress.progress_bar`).

    Returns:
        float32 tensor shaped ``coord.shape[:-1]``, positive, on coord's device; scaled as
        described in the module docstring.
    """
    image_shape = check_image_shape(image_shape)
    check_coord(coord, image_shape)
    check_positive_int(n_iter, "n_iter")
    nufft = NUFFT(coord.to(torch.float32), image_shape, backend=backend)
    window = _gaussian_window(image_shape, coord.device)
    weights = torch.ones(coord.shape[:-1], dtype=torch.complex64, device=coord.device)
    with torch.no_grad():
        for _ in progress_bar(range(n_iter), "Pipe-Menon DCF", progress):
            density = nufft.apply_forward(window * nufft.apply_adjoint(weights)).real.abs()
            weights = weights / density.clamp_min(torch.finfo(torch.float32).tiny)
    return weights.real.contiguous()  # float32 of its own, not a view of the complex storage
