"""Multi-coil SENSE operator ``E = F S`` with optional sample weights in its normal equations."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from blockrecon.checks import check_positive_int

from .autograd import SelfAdjointFunction
from .nufft import NUFFT
from .operator import check_normal
from .toeplitz import ToeplitzNormal, apply_sense_toeplitz, apply_toeplitz
from .validation import check_coil_count, check_image, check_kspace, check_maps, check_weights

__all__ = ["Sense", "AUTO_COIL_VALUES"]

#: With ``coil_batch=None``, coils per chunk are chosen so that a chunk of coil images holds at
#: most this many values (128 MiB in complex64): small problems run in one call, a 3D volume of
#: 256^3 or more one coil at a time (NUFFT calls; the Toeplitz normal sizes its own blocks, see
#: :data:`blockrecon.physics.toeplitz.WORK_VALUES`).
AUTO_COIL_VALUES = 2**24


def _add_coils(
    total: torch.Tensor | None, z: torch.Tensor, conj_maps: torch.Tensor, coil_axis: int
) -> torch.Tensor:
    """``total + sum_c conj_maps_c z_c``; without autograd in place, one coil at a time (and
    ``z`` is released on return, before the next chunk is made)."""
    if torch.is_grad_enabled():
        part = (conj_maps * z).sum(dim=coil_axis)
        return part if total is None else total + part
    for coil_image in z.mul_(conj_maps).unbind(coil_axis):
        total = coil_image.clone() if total is None else total.add_(coil_image)
    return total


class Sense(torch.nn.Module):
    """SENSE forward model: coil sensitivities then NUFFT, per coil.

    A :class:`~blockrecon.physics.operator.LinearOperator`: ``forward`` is ``E x = F (S x)``,
    ``adjoint`` is ``E^H y = sum_c conj(S_c) F^H y_c``, ``normal`` is ``E^H W E x`` and
    ``normal_rhs`` is ``E^H W y`` (``W`` = diag(weights), identity when no weights are given).

    Autograd: ``forward`` and ``adjoint`` save no per-coil tensor (the NUFFT saves nothing, the
    maps multiply only needs the maps). ``normal`` is self-adjoint, so when the maps do not
    require grad it is one autograd node whose backward is ``normal`` of the incoming gradient
    and which saves nothing (:class:`~blockrecon.physics.autograd.SelfAdjointFunction`); coils
    are then processed chunk by chunk with in-place accumulation. When the maps require grad,
    ``normal`` runs through plain autograd instead, so that gradients reach the maps (at the
    cost of the per-coil tensors autograd keeps).

    Args:
        maps: complex coil sensitivities ``(coils, *image_shape)``, 2D or 3D images. If ``maps``
            requires grad (an ``nn.Parameter`` or part of a graph), gradients flow into it.
        coord: float k-space coordinates ``(..., ndim)`` in grid units, ``[-N/2, N/2]``.
        weights: optional real, non-negative density weights broadcastable to
            ``coord.shape[:-1]``; they enter ``normal`` and ``normal_rhs``, not ``forward``
            and ``adjoint``.
        backend: NUFFT backend (``"auto"``, ``"sigpy"``, ``"finufft"``, ``"cufinufft"``).
        normal: how ``normal`` is computed: ``"toeplitz"`` (one FFT convolution on the 2x grid,
            kernel built on first use) or ``"pair"`` (``adjoint(W forward(x))``).
        coil_batch: process this many coils at a time to bound memory (the Toeplitz normal's
            work buffers then hold at most ``coil_batch`` coil images each). ``None``:
            automatic, as many coils per NUFFT call as keep a chunk within
            :data:`AUTO_COIL_VALUES` values (at least one), and Toeplitz blocks of
            :data:`~blockrecon.physics.toeplitz.WORK_VALUES` values.
        eps: NUFFT accuracy for FINUFFT backends (``None`` = default).

    Shapes: image ``(*batch, *image_shape)``; k-space ``(*batch, coils, *coord.shape[:-1])``.
    """

    def __init__(
        self,
        maps: torch.Tensor,
        coord: torch.Tensor,
        *,
        weights: torch.Tensor | None = None,
        backend: str = "auto",
        normal: str = "toeplitz",
        coil_batch: int | None = None,
        eps: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4):
            raise ValueError(
                "maps must be a tensor of shape (coils, *image_shape) with a 2D or 3D image, "
                f"got {getattr(maps, 'shape', type(maps).__name__)}"
            )
        image_shape = tuple(maps.shape[1:])
        check_maps(maps, image_shape)
        if coil_batch is not None:
            check_positive_int(coil_batch, "coil_batch")
        self.normal_kind = check_normal(normal)
        self.nufft = NUFFT(coord, image_shape, backend=backend, eps=eps)
        if weights is not None:
            check_weights(weights, self.nufft.sample_shape)
            if weights.device != coord.device:
                raise ValueError(f"weights are on {weights.device} but coord on {coord.device}")
            weights = weights.detach()
        if maps.device != coord.device:
            raise ValueError(f"maps are on {maps.device} but coord on {coord.device}")
        if isinstance(maps, torch.nn.Parameter):
            self.maps = maps
        else:
            self.register_buffer("maps", maps, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        self.coil_batch = coil_batch
        self.toeplitz = (
            ToeplitzNormal(coord, image_shape, weights, backend=backend, eps=eps)
            if normal == "toeplitz"
            else None
        )

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.nufft.image_shape

    @property
    def num_coils(self) -> int:
        return self.maps.shape[0]

    @property
    def kspace_shape(self) -> tuple[int, ...]:
        """Per-item k-space shape ``(coils, *coord.shape[:-1])``."""
        return (self.num_coils, *self.nufft.sample_shape)

    def extra_repr(self) -> str:
        return f"coils={self.num_coils}, coil_batch={self.coil_batch}, normal={self.normal_kind}"

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(*batch, *image_shape)`` -> ``(*batch, coils, *samples)``."""
        self._check_image(image)
        return torch.cat(
            [self.nufft.apply_forward(self._coil_images(image, c)) for c in self._coil_chunks()],
            dim=image.ndim - len(self.image_shape),
        )

    def adjoint(self, kspace: torch.Tensor) -> torch.Tensor:
        """``(*batch, coils, *samples)`` -> ``(*batch, *image_shape)``."""
        check_coil_count(kspace, self.maps, sample_ndim=len(self.nufft.sample_shape))
        check_kspace(kspace, self.kspace_shape)
        self.nufft.check_tensor(kspace, "kspace")
        axis = kspace.ndim - len(self.nufft.sample_shape) - 1
        return self._combine_coils(
            lambda c: self.nufft.apply_adjoint(kspace.narrow(axis, c.start, c.stop - c.start))
        )

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``E^H W E image`` ``(*batch, *image_shape)``: Toeplitz embedding or
        ``adjoint(W forward(image))``, as chosen at construction (``normal=``)."""
        self._check_image(image)
        apply = self._nufft_normal if self.toeplitz is None else self._toeplitz_normal
        if self.maps.requires_grad:
            return apply(image)
        return SelfAdjointFunction.apply(image, apply)

    def normal_rhs(self, kspace: torch.Tensor) -> torch.Tensor:
        """``E^H W y``: ``(*batch, coils, *samples)`` -> ``(*batch, *image_shape)``, the
        right-hand side that matches :meth:`normal` (``adjoint`` when there are no weights)."""
        if self.weights is None:
            return self.adjoint(kspace)
        return self.adjoint(kspace * self.weights.to(kspace.real.dtype))

    def _toeplitz_normal(self, image: torch.Tensor) -> torch.Tensor:
        kernel = self.toeplitz.kernel(image.real.dtype)
        if torch.is_grad_enabled() and self.maps.requires_grad:  # autograd through the maps
            return self._combine_coils(
                lambda c: apply_toeplitz(self._coil_images(image, c), kernel)
            )
        # an explicit coil_batch bounds the work buffers to that many coil images
        return apply_sense_toeplitz(image, kernel, self.maps, buffer_images=self.coil_batch)

    def _nufft_normal(self, image: torch.Tensor) -> torch.Tensor:
        def per_coil(coils: slice) -> torch.Tensor:
            kspace = self.nufft.apply_forward(self._coil_images(image, coils))
            if self.weights is not None:
                kspace = kspace * self.weights.to(kspace.real.dtype)
            return self.nufft.apply_adjoint(kspace)

        return self._combine_coils(per_coil)

    def _check_image(self, image: torch.Tensor) -> None:
        check_image(image, self.image_shape)
        self.nufft.check_tensor(image, "image")

    def _coil_chunks(self) -> Iterator[slice]:
        step = self.coil_batch or max(1, AUTO_COIL_VALUES // math.prod(self.image_shape))
        for start in range(0, self.num_coils, step):
            yield slice(start, min(start + step, self.num_coils))

    def _coil_images(self, image: torch.Tensor, coils: slice) -> torch.Tensor:
        """``S_c x`` for the coils in the slice: ``(*batch, c, *image_shape)``."""
        return image.unsqueeze(-len(self.image_shape) - 1) * self.maps[coils]

    def _combine_coils(self, per_coil_images: Callable[[slice], torch.Tensor]) -> torch.Tensor:
        """``sum_c conj(S_c) z_c`` where ``per_coil_images(coils)`` gives ``z`` for a chunk.

        ``z`` is a fresh tensor. When autograd is off (inside ``normal``) it is weighted in
        place and its coils are added one by one into the result, so no image-sized temporary
        is made beyond ``z`` and the result."""
        coil_axis = -len(self.image_shape) - 1
        total = None
        for coils in self._coil_chunks():
            total = _add_coils(total, per_coil_images(coils), self.maps[coils].conj(), coil_axis)
        return total
