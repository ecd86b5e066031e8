"""Software coil compression: principal components of the multi-coil k-space.

The coils ``x`` samples matrix ``Y`` of an acquisition is decomposed as ``Y = U s V^H``; the
``n_virtual`` leading left singular vectors give the compression matrix ``A = U[:, :n]^H``
(orthonormal rows), and the virtual coils are ``A Y`` (Huang et al., MRI 2008; Buehrer et al.,
MRM 2007). Projecting the coil maps by the same ``A`` keeps the SENSE model consistent:
``A E x = F (A S) x``, and with ``n_virtual`` equal to the coil count ``A`` is unitary, so the
least-squares SENSE solution is unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch

from blockrecon.checks import check_positive, check_positive_int

from .acquisition import Acquisition
from .validation import check_coil_count, check_complex, check_finite, check_maps

__all__ = [
    "CompressedCoils",
    "compress_coils",
    "compress_acquisition",
    "coil_energy",
    "project_coils",
]


class CompressedCoils(NamedTuple):
    """The result of :func:`compress_coils`.

    Attributes:
        kspace: complex ``(n_virtual, *samples)``, the virtual-coil k-space.
        maps: complex ``(n_virtual, *image_shape)``, the maps projected by ``matrix``, or
            ``None`` when no maps were given.
        matrix: complex ``(n_virtual, coils)`` with orthonormal rows; ``kspace = matrix @ y``.
        energy: fraction of the k-space energy (sum of ``|y|^2``) the virtual coils keep.
    """

    kspace: torch.Tensor
    maps: torch.Tensor | None
    matrix: torch.Tensor
    energy: float


def _check_kspace(kspace: torch.Tensor) -> None:
    if not isinstance(kspace, torch.Tensor) or kspace.ndim < 2:
        raise ValueError(
            "kspace must be a tensor of shape (coils, *samples), "
            f"got {getattr(kspace, 'shape', type(kspace).__name__)}"
        )
    check_complex(kspace, "kspace")
    check_finite(kspace, "kspace")


def _check_maps(maps: torch.Tensor, kspace: torch.Tensor) -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4):
        raise ValueError(
            "maps must be a tensor of shape (coils, *image_shape) with a 2D or 3D image, "
            f"got {getattr(maps, 'shape', type(maps).__name__)}"
        )
    check_maps(maps, tuple(maps.shape[1:]))
    check_coil_count(kspace, maps)
    if maps.device != kspace.device:
        raise ValueError(f"maps are on {maps.device} but kspace on {kspace.device}")


def _principal_coils(kspace: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors of the coils x samples matrix (columns, complex128) and the
    squared singular values (float64), both in decreasing order of energy."""
    flat = kspace.reshape(kspace.shape[0], -1)
    gram = (flat @ flat.conj().T).to(torch.complex128)
    eigenvalues, vectors = torch.linalg.eigh(gram)
    return vectors.flip(-1), eigenvalues.flip(-1).clamp(min=0)


def coil_energy(kspace: torch.Tensor) -> torch.Tensor:
    """Fraction of the k-space energy kept by ``1, 2, ..., coils`` virtual coils.

    Args:
        kspace: complex ``(coils, *samples)``.

    Returns:
        float64 ``(coils,)``, non-decreasing, last entry 1 (up to rounding).
    """
    _check_kspace(kspace)
    energies = _principal_coils(kspace)[1]
    return _cumulative_fraction(energies)


def _cumulative_fraction(energies: torch.Tensor) -> torch.Tensor:
    total = energies.sum()
    if not total > 0:
        raise ValueError("the k-space data are zero: no coil holds any energy")
    return energies.cumsum(0) / total


def _virtual_count(
    n_coils: int, n_virtual: int | None, energy: float | None, kept: torch.Tensor
) -> int:
    """The number of virtual coils from ``n_virtual`` or from ``energy`` (exactly one given),
    ``kept`` being the cumulative energy fractions of :func:`coil_energy`."""
    if (n_virtual is None) == (energy is None):
        raise ValueError("give exactly one of n_virtual and energy")
    if energy is not None:
        energy = check_positive(energy, "energy")
        if energy > 1:
            raise ValueError(f"energy must lie in (0, 1], got {energy!r}")
        return min(int((kept < energy - 1e-12).sum()) + 1, n_coils)
    n_virtual = check_positive_int(n_virtual, "n_virtual")
    if n_virtual > n_coils:
        raise ValueError(f"n_virtual must lie between 1 and the {n_coils} coils, got {n_virtual}")
    return n_virtual


def project_coils(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix`` applied along the coil axis (the first) of ``x``: ``(v, c) x (c, ...)`` ->
    ``(v, ...)``, in the dtype of ``x``."""
    return torch.tensordot(matrix.to(x.dtype), x, dims=([1], [0]))


def compress_coils(
    kspace: torch.Tensor,
    maps: torch.Tensor | None = None,
    n_virtual: int | None = None,
    energy: float | None = None,
) -> CompressedCoils:
    """Compress multi-coil k-space (and its maps) to fewer virtual coils by PCA/SVD.

    Args:
        kspace: complex64 or complex128 ``(coils, *samples)``.
        maps: complex ``(coils, *image_shape)`` on the device of ``kspace``, or ``None``.
        n_virtual: number of virtual coils, 1 to ``coils``.
        energy: instead of ``n_virtual``, the fraction of the k-space energy to keep, in
            (0, 1]: the fewest virtual coils that hold at least that much.

    Returns:
        :class:`CompressedCoils` with k-space and maps in their input dtypes and the
        ``(n_virtual, coils)`` matrix in the dtype of ``kspace``.

    Raises:
        ValueError: neither or both of ``n_virtual`` and ``energy``; ``n_virtual`` outside
            ``[1, coils]`` or ``energy`` outside (0, 1]; real or non-finite data; a bad shape
            or a coil count of ``maps`` different from that of ``kspace``; zero k-space.
    """
    _check_kspace(kspace)
    if maps is not None:
        _check_maps(maps, kspace)
    vectors, energies = _principal_coils(kspace)
    kept = _cumulative_fraction(energies)
    count = _virtual_count(kspace.shape[0], n_virtual, energy, kept)
    matrix = vectors[:, :count].conj().T.to(kspace.dtype)
    return CompressedCoils(
        kspace=project_coils(matrix, kspace),
        maps=None if maps is None else project_coils(matrix, maps),
        matrix=matrix,
        energy=float(kept[count - 1]),
    )


def compress_acquisition(acq: Acquisition, n_virtual: int | None) -> Acquisition:
    """``acq`` with its k-space and its maps (when it has maps) compressed to ``n_virtual``
    virtual coils by one :func:`compress_coils` matrix; ``acq`` itself when ``n_virtual`` is
    ``None``. Maps estimated afterwards from the result are maps of the virtual coils."""
    if n_virtual is None:
        return acq
    compressed = compress_coils(acq.kspace, acq.maps, n_virtual=n_virtual)
    return replace(acq, kspace=compressed.kspace, maps=compressed.maps)
