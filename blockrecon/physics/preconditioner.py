"""Circulant preconditioner for the SENSE normal equations ``(E^H W E + lam I) x = b``.

3D radial sampling puts its samples at a density that falls as ``1/|k|^2`` from the k-space
centre, so the eigenvalues of ``E^H W E`` span several decades (Fourier modes near the centre
are sampled hundreds of times more densely than the edge of the k-space ball, and the corners
outside it not at all) and plain CG needs more iterations as the image grows. Fourier modes
nearly diagonalise ``E^H W E`` (exactly, for one coil of uniform sensitivity on an infinite
grid), so an approximate inverse applied with FFTs is

    P = (D + s)^{-1},   D = the diagonal of E^H W E in a Fourier basis,   s = max(lam, floor).

``D`` is exact and cheap: for the plane wave ``f_k`` of frequency ``k`` (unit norm on the image
grid),

    <f_k, E^H W E f_k> = sum_d h(d) a(d) exp(-2 pi i k d),
    a(d) = 1/prod(N) sum_c sum_n conj(S_c(n + d)) S_c(n),

with ``h`` the Toeplitz point-spread function (:func:`~blockrecon.physics.toeplitz.toeplitz_kernel`)
and ``a`` the coil maps' linear autocorrelation (both supported on ``|d_j| < N_j``). With one
coil of constant sensitivity ``a`` is the triangle ``prod_j (1 - |d_j|/N_j)`` and ``D`` sampled
at the image grid's frequencies is T. Chan's optimal circulant approximation; the maps make the
window narrower (the coils mix neighbouring Fourier modes), which is what the SENSE operator
does to them.

The k-space centre: every radial spoke passes through ``k = 0``, so its samples add a
rank-``coils`` term whose eigenvalues dwarf those of its Fourier neighbours; ``D`` would smear
it over every low frequency (the preconditioned spectrum then reached 22 at 32^3 instead of
5). It is left out of ``D`` and added back exactly by the Woodbury identity
(:class:`CirculantPreconditioner`).

The shift: ``s = lam`` makes ``P`` the Fourier-diagonal inverse of the system itself (fastest
to a tight tolerance), but the first iterates then weight the sparsely sampled edge of k-space
as much as its well-sampled centre and overshoot; a larger ``s`` (``floor``, a multiple of the
mean eigenvalue of ``E^H W E``, :data:`DEFAULT_FLOOR`) keeps the early iterates close to plain
CG's ordering and still equalises the dense centre, which is what matters at the few
iterations of an unrolled network. For ``lam = 0`` a floor is needed anyway: the unsampled
corners have ``D = 0``.

Two ways to apply ``P`` (``grid``):

``"2x"`` (default)
    ``P x = crop(IFFT_2N(FFT_2N(pad(x)) / (D + s)))`` with ``D`` at the frequencies of the 2x
    grid: the cost of one coil of the Toeplitz normal operator (``2^ndim`` FFT pairs of the
    image's size, :func:`~blockrecon.physics.toeplitz.apply_toeplitz`), about ``1/coils`` of a
    SENSE normal, and fewer iterations than ``"1x"``.
``"1x"``
    ``P x = IFFT_N(FFT_N(x) / (D + s))`` with ``D`` at the image grid's frequencies: one FFT
    pair of the image's size.

Both are Hermitian positive definite for any positive shift (``crop`` and ``pad`` are each
other's adjoint), and so is the Woodbury-corrected ``M``: preconditioned CG
(:func:`~blockrecon.physics.cg.conjugate_gradient`, ``preconditioner=``) converges to the
solution of plain CG; only the path changes. Iterations and errors are measured in
``benchmarks/bench_preconditioner.py`` (table in ``benchmarks/README.md``).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import torch

from .toeplitz import ToeplitzNormal, apply_toeplitz

__all__ = [
    "PRECONDITIONERS",
    "GRIDS",
    "DEFAULT_FLOOR",
    "check_preconditioner",
    "fourier_diagonal",
    "centre_weight",
    "CirculantPreconditioner",
    "circulant_preconditioner",
]

#: Names accepted by ``preconditioner=`` arguments (``None`` and ``"none"``: plain CG).
PRECONDITIONERS = ("none", "circulant")

#: Frequency grids of :class:`CirculantPreconditioner`.
GRIDS = ("2x", "1x")

#: The smallest shift, as a multiple of the mean eigenvalue of ``E^H W E`` (trace / voxels):
#: it stands in for ``lam`` where ``lam`` is smaller. 30 equalises the densely sampled
#: k-space core and leaves the rest to CG's own ordering; at 96^3 (3D radial 8x, 8 coils,
#: ``lam`` of the shipped model) it reached plain CG's 12-iteration error in 4 iterations,
#: against 7 with a floor of 3 and 9 with 1, which are faster only to much tighter errors
#: (``benchmarks/bench_preconditioner.py``).
DEFAULT_FLOOR = 30.0

#: Samples within this distance of ``k = 0`` (grid units, per axis) count as the centre.
CENTRE_RADIUS = 1e-4


def check_preconditioner(name: str | None) -> str | None:
    """``None`` for plain CG (``None`` or ``"none"``), else the name, one of
    :data:`PRECONDITIONERS`; anything else raises ``ValueError``."""
    if name is not None and name not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be None or one of {PRECONDITIONERS}, got {name!r}")
    return None if name == "none" else name


def _pad(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Zero-pad the last ``ndim`` axes to twice their size (data at the low corner)."""
    pad = []
    for n in reversed(x.shape[-ndim:]):
        pad += [0, n]
    return torch.nn.functional.pad(x, pad)


def _autocorrelation(maps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``a(d) = 1/prod(N) sum_c sum_n conj(S_c(n + d)) S_c(n)`` on the 2x grid (FFT order),
    complex in ``dtype``'s complex type, from maps ``(coils, *N)``, one coil at a time."""
    ndim, shape = maps.ndim - 1, tuple(maps.shape[1:])
    dims = tuple(range(-ndim, 0))
    power = torch.zeros(tuple(2 * n for n in shape), dtype=dtype, device=maps.device)
    for coil in maps.detach():
        power += torch.fft.fftn(_pad(coil.to(dtype.to_complex()), ndim), dim=dims).abs().square_()
    # ifft(|FFT S|^2)(d) = sum_n conj(S(n)) S(n + d), the conjugate of prod(N) a(d)
    return torch.fft.ifftn(power, dim=dims).conj_physical_().div_(math.prod(shape))


def fourier_diagonal(
    kernel: torch.Tensor, maps: torch.Tensor, centre_weight: float = 0.0
) -> torch.Tensor:
    """``D(k) = <f_k, E^H W E f_k>`` at the frequencies of the 2x grid (see module docstring).

    Args:
        kernel: the Toeplitz kernel of ``A^H W A``, real ``2N``
            (:func:`~blockrecon.physics.toeplitz.toeplitz_kernel`).
        maps: complex coil maps ``(coils, *N)``.
        centre_weight: summed weight of samples at ``k = 0`` to leave out of ``D`` (they are
            a rank-``coils`` term, see :class:`CirculantPreconditioner`); 0 keeps them.

    Returns:
        real tensor ``2N`` in the kernel's dtype, non-negative (rounding clamped), in FFT order
        (the layout of ``kernel``); ``D[::2, ::2, ...]`` are the image grid's frequencies.
    """
    ndim = kernel.ndim
    shape = tuple(maps.shape[1:])
    if maps.ndim != ndim + 1 or tuple(kernel.shape) != tuple(2 * n for n in shape):
        raise ValueError(
            f"kernel {tuple(kernel.shape)} must be twice the maps' image shape {shape}"
        )
    dims = tuple(range(-ndim, 0))
    window = _autocorrelation(maps, kernel.dtype)
    psf = torch.fft.ifftn(kernel.to(window.dtype), dim=dims)
    if centre_weight:  # the k = 0 samples' point-spread function is the constant w0/prod(N)
        psf.sub_(centre_weight / math.prod(shape))
    return torch.fft.fftn(psf.mul_(window), dim=dims).real.clamp_min_(0).contiguous()


def centre_weight(coord: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """Summed weight of the samples at the k-space centre (``|k_j| <= 1e-4`` grid units for
    every ``j``): ``coord`` ``(..., ndim)``, ``weights`` broadcastable to ``coord.shape[:-1]``
    (ones when ``None``)."""
    at_centre = coord.detach().abs().amax(-1) <= CENTRE_RADIUS
    if weights is None:
        return float(at_centre.sum())
    return float((weights.detach().expand(at_centre.shape) * at_centre).sum())


#: Shifted preconditioners kept per preconditioner (a learnable lam changes every step; an
#: unrolled network with a lam per unroll uses a few at a time).
SHIFTS_KEPT = 4


class CirculantPreconditioner:
    """``M = (P^{-1} + U G U^H)^{-1}`` with ``P = (D + max(lam, floor))^{-1}`` applied with
    FFTs (see the module docstring) and ``U G U^H`` the k-space centre's samples.

    Every radial spoke passes through ``k = 0``, so the samples there (summed weight ``w0``)
    add ``w0/prod(N) sum_c conj(S_c) S_c^T``, a rank-``coils`` term whose eigenvalues (their
    sum is ``w0``) stand far above its Fourier neighbours'. A Fourier-diagonal ``D`` would
    spread it over every low frequency; instead it is left out of ``D`` and added back
    exactly (Woodbury): ``M = P - P U (G^{-1} + U^H P U)^{-1} U^H P`` with ``U = conj(S)``
    ``(N, coils)`` and ``G = w0/prod(N) I``. Building it for one ``lam`` costs ``coils``
    applications of ``P``; applying it, one of ``P`` and two products with ``coils`` images.

    Args:
        diagonal: ``D`` on the 2x grid without the centre samples, real ``2N``
            (:func:`fourier_diagonal` with ``centre_weight``).
        grid: ``"2x"`` or ``"1x"`` (:data:`GRIDS`).
        floor: smallest shift as a fraction of the mean eigenvalue of ``E^H W E``
            (:data:`DEFAULT_FLOOR`).
        maps: complex coil maps ``(coils, *N)`` (needed when ``centre_weight > 0``).
        centre_weight: ``w0`` (0: no centre term, ``M = P``).

    ``preconditioner.shifted(lam)`` is ``M`` for the system ``E^H W E + lam I`` as a function
    of complex images ``(*batch, *N)`` (same shape and dtype back), the form
    :func:`~blockrecon.physics.cg.conjugate_gradient` takes; the last one built is kept.
    ``M`` is a constant (no autograd through ``D`` or ``lam``): it changes the path of CG, not
    its solution.
    """

    def __init__(
        self,
        diagonal: torch.Tensor,
        grid: str = "2x",
        floor: float = DEFAULT_FLOOR,
        maps: torch.Tensor | None = None,
        centre_weight: float = 0.0,
    ) -> None:
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
        if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor > 0):
            raise ValueError(f"floor must be a positive number, got {floor!r}")
        if diagonal.is_complex() or diagonal.ndim not in (2, 3):
            raise ValueError(f"diagonal must be a real 2D or 3D tensor, got {diagonal.dtype}")
        self.image_shape = tuple(n // 2 for n in diagonal.shape)
        if centre_weight < 0:
            raise ValueError(f"centre_weight must be >= 0, got {centre_weight}")
        if centre_weight > 0 and maps is None:
            raise ValueError("a positive centre_weight needs the coil maps")
        if maps is not None and tuple(maps.shape[1:]) != self.image_shape:
            raise ValueError(f"maps {tuple(maps.shape)} do not match diagonal {self.image_shape}")
        self.grid = grid
        on_image_grid = diagonal[(slice(None, None, 2),) * diagonal.ndim]
        self.diagonal = diagonal if grid == "2x" else on_image_grid
        voxels = math.prod(self.image_shape)
        mean_eigenvalue = on_image_grid.mean().item()  # trace(E^H W E) / voxels
        if centre_weight:  # plus that of the centre term, w0/voxels * sum_c |S_c|^2 / voxels
            mean_eigenvalue += centre_weight * maps.abs().square().sum().item() / voxels**2
        self.min_shift = float(floor) * mean_eigenvalue
        self.maps = None if centre_weight == 0 else maps.detach()
        self.centre_weight = float(centre_weight)
        self._shifted: dict[tuple, Callable[[torch.Tensor], torch.Tensor]] = {}

    def circulant(
        self, lam: float | torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``P = (D + max(lam, floor))^{-1}`` alone, for images of real dtype ``dtype``."""
        shift = max(float(lam), self.min_shift)
        inverse = (self.diagonal.to(torch.float64) + shift).reciprocal_().to(dtype)
        ndim, shape = inverse.ndim, self.image_shape
        dims = tuple(range(-ndim, 0))

        def apply(x: torch.Tensor) -> torch.Tensor:
            if tuple(x.shape[-ndim:]) != shape:
                raise ValueError(f"image {tuple(x.shape)} does not end in {shape}")
            if self.grid == "2x":
                return apply_toeplitz(x, inverse)
            return torch.fft.ifftn(torch.fft.fftn(x, dim=dims) * inverse, dim=dims)

        return apply

    def shifted(
        self, lam: float | torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``M`` for the system ``E^H W E + lam I``, for images of real dtype ``dtype``."""
        key = (float(lam), dtype)
        if key not in self._shifted:  # one per lam: unrolls with their own lam reuse theirs
            if len(self._shifted) >= SHIFTS_KEPT:
                self._shifted.pop(next(iter(self._shifted)))
            self._shifted[key] = self._build(*key)
        return self._shifted[key]

    def _build(self, lam: float, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
        circulant = self.circulant(lam, dtype)
        if self.maps is None:
            return circulant
        coils = self.maps.shape[0]
        maps = self.maps.to(dtype.to_complex()).reshape(coils, -1)  # U^H = maps (coils, n)
        with torch.no_grad():  # P U, the coils as one batch
            pu = circulant(maps.conj().reshape(coils, *self.image_shape)).reshape(coils, -1)
        small = maps.to(torch.complex128) @ pu.to(torch.complex128).T  # U^H P U
        small.diagonal().add_(math.prod(self.image_shape) / self.centre_weight)  # + G^{-1}
        inverse = torch.linalg.inv(small).to(maps.dtype)
        n = maps.shape[1]

        def apply(x: torch.Tensor) -> torch.Tensor:
            px = circulant(x)
            flat = px.reshape(-1, n)
            coefficients = (flat @ maps.T) @ inverse.T  # (U^H P x) solved, (batch, coils)
            return (flat - coefficients @ pu).reshape(x.shape)

        return apply


#: Preconditioners already built, per operator (weakly held: they go with the operator).
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _toeplitz_kernel(op: torch.nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The Toeplitz kernel of a :class:`~blockrecon.physics.Sense` operator ``op``: its own
    (``normal="toeplitz"``), or one built for it (``normal="pair"``)."""
    if getattr(op, "toeplitz", None) is not None:
        return op.toeplitz.kernel(dtype)
    nufft = op.nufft
    toeplitz = ToeplitzNormal(
        nufft.coord, op.image_shape, op.weights, backend=nufft.backend, eps=nufft.eps
    )
    return toeplitz.kernel(dtype)


def circulant_preconditioner(
    op: torch.nn.Module,
    grid: str = "2x",
    floor: float = DEFAULT_FLOOR,
    dtype: torch.dtype = torch.float32,
) -> CirculantPreconditioner:
    """The :class:`CirculantPreconditioner` of a SENSE operator, built once per operator.

    Args:
        op: a :class:`~blockrecon.physics.Sense` (its maps and sample weights).
        grid, floor: see :class:`CirculantPreconditioner`.
        dtype: float32 or float64, precision of ``D``.

    It is rebuilt when the operator's maps change in place (e.g. scaled by a normalization).

    Raises:
        ValueError: ``op`` has no coil maps and NUFFT (not a SENSE operator).
    """
    if not (isinstance(getattr(op, "maps", None), torch.Tensor) and hasattr(op, "nufft")):
        raise ValueError(
            f"the circulant preconditioner needs a SENSE operator (maps and NUFFT), "
            f"got {type(op).__name__}"
        )
    maps_state = (op.maps._version, op.maps.data_ptr())
    key = (grid, float(floor), dtype)
    state, built = _BUILT.get(op, (None, {}))
    if state != maps_state:  # new operator, or maps changed since: start afresh
        built = {}
        _BUILT[op] = (maps_state, built)
    if key not in built:
        maps = op.maps.detach().to(dtype.to_complex())
        w0 = centre_weight(op.nufft.coord, op.weights)
        diagonal = fourier_diagonal(_toeplitz_kernel(op, dtype), maps, w0)
        built[key] = CirculantPreconditioner(diagonal, grid, floor, maps, w0)
    return built[key]
