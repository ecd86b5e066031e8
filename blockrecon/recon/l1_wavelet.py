"""L1-wavelet compressed sensing by FISTA with the Toeplitz SENSE normal operator."""

from __future__ import annotations

import math

import torch

from blockrecon.backend import from_array, to_array
from blockrecon.checks import check_positive, check_positive_int
from blockrecon.physics.operator import max_eigenvalue
from blockrecon.progress import progress_bar
from blockrecon.recon._common import sense_operator


class WaveletSoftThreshold:
    """Proximal operator of ``t * ||Psi x||_1`` for an orthogonal wavelet ``Psi`` (SigPy).

    ``prox(x, t) = Psi^H soft(Psi x, t)`` with complex soft thresholding
    ``soft(c, t) = c * max(1 - t/|c|, 0)``. Runs in NumPy/CuPy on the tensor's device.
    """

    def __init__(self, image_shape: tuple[int, ...], wavelet: str = "db4") -> None:
        import pywt
        import sigpy

        if wavelet not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"wavelet must be a discrete PyWavelets name, got {wavelet!r}")
        self.transform = sigpy.linop.Wavelet(image_shape, wave_name=wavelet)

    def __call__(self, x: torch.Tensor, threshold: float) -> torch.Tensor:
        coefficients = from_array(self.transform(to_array(x)))
        magnitude = coefficients.abs()
        shrink = torch.clamp(1 - threshold / magnitude.clamp_min(1e-30), min=0)
        return from_array(self.transform.H(to_array(coefficients * shrink))).to(x.dtype)


def l1_wavelet(
    kspace: torch.Tensor,
    coord: torch.Tensor,
    maps: torch.Tensor,
    lamda: float,
    n_iter: int = 50,
    wavelet: str = "db4",
    weights: torch.Tensor | None = None,
    backend: str = "auto",
    progress: bool = True,
) -> torch.Tensor:
    """L1-wavelet CS: ``argmin_x 1/2 ||W^(1/2)(E x - y)||^2 + lamda ||Psi x||_1`` by FISTA.

    The gradient ``E^H W E x - E^H W y`` uses the Toeplitz normal operator; the step is
    ``1/L`` with ``L`` the largest eigenvalue of ``E^H W E`` (power iteration, 1% margin).
    ``lamda`` is in the units of the data: with k-space at the object's scale (as from
    :func:`~blockrecon.physics.simulate.simulate_acquisition`, image magnitude ~1),
    ``1e-3`` to ``1e-2`` is a sensible range.

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        coord: float ``(..., ndim)`` in grid units.
        maps: complex ``(coils, *image_shape)``.
        lamda: L1 weight (>= 0).
        n_iter: FISTA iterations.
        wavelet: PyWavelets discrete wavelet name.
        weights: optional non-negative sample weights.
        backend: NUFFT backend.
        progress: progress bar.

    Returns:
        complex64 image ``image_shape``.
    """
    lamda = check_positive(lamda, "lamda", allow_zero=True)
    check_positive_int(n_iter, "n_iter")
    sense = sense_operator(kspace, coord, maps, weights=weights, backend=backend)
    prox = WaveletSoftThreshold(sense.image_shape, wavelet)
    kspace = kspace.to(torch.complex64)
    with torch.no_grad():
        rhs = sense.normal_rhs(kspace)
        step = 1 / (1.01 * max_eigenvalue(sense))
        x = torch.zeros_like(rhs)
        z, t = x, 1.0
        for _ in progress_bar(range(n_iter), "L1-wavelet", progress):
            x_next = prox(z - step * (sense.normal(z) - rhs), step * lamda)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = x_next + ((t - 1) / t_next) * (x_next - x)
            x, t = x_next, t_next
    return x
