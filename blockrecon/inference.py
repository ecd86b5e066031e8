"""Applying a trained unrolled network: coil maps, the model's data contract, data preparation.

A model file's ``extra`` metadata says how the model takes its data (:class:`DataContract`):
with density weights in its operator, and normalized or at the object's own scale.
Normalization (:func:`normalize`) makes one trained network usable across scanners and
trajectories. Two scalars are applied, neither changes the reconstruction problem:

* the operator is scaled to unit norm: ``E' = a E`` with ``a = 1 / sqrt(lambda_max(E^H E))``
  and ``y' = a y``, so a data-consistency step of about 1 is stable whatever the trajectory;
* the intensity is scaled to a unit peak: ``y'' = c y'`` and ``x'' = c x`` with ``c`` the inverse
  of the largest magnitude of the least-squares-scaled adjoint image ``s E'^H y'`` (the
  ``init="adjoint"`` starting point of :class:`~blockrecon.unrolled.UnrolledNet`).

A network trained on normalized data reconstructs ``x''``; the image at the data's own scale is
``x'' / c`` (``ModelInputs.intensity_scale`` holds ``c``). The right-hand side ``E^H W y`` and
its least-squares scale ``s`` are computed once and handed to the network
(:meth:`~blockrecon.unrolled.UnrolledNet.solve`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from blockrecon.models import pretrained_path, resolve_config
from blockrecon.models.files import model_from_file, read_unrolled_file
from blockrecon.physics import Sense, estimate_maps, max_eigenvalue, pipe_menon_dcf
from blockrecon.physics.acquisition import Acquisition
from blockrecon.torch_file import LoadedModel
from blockrecon.unrolled import UnrolledNet, adjoint_scale

#: Power iterations for the operator norm: ample for a normalization (about 1% low for plain
#: radial operators; about 5% low with density weights, whose spectrum is flatter).
POWER_ITERATIONS = 10

#: Value of ``extra["data_normalization"]`` of models trained on normalized data.
NORMALIZATION = "unit_operator_unit_peak"

#: Value of ``extra["density_weights"]`` of models whose data consistency was trained with
#: density-weighted operators.
DENSITY_WEIGHTS = "pipe_menon"


@dataclass(frozen=True)
class DataContract:
    """How a model takes its data, as stored in its model file's ``extra`` metadata.

    Attributes:
        normalized: trained on normalized data (``extra["data_normalization"]``).
        density_weights: trained with operators ``E^H W E``, ``W`` the Pipe-Menon weights of
            the trajectory (``extra["density_weights"]``).
    """

    normalized: bool = False
    density_weights: bool = False

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> DataContract:
        """The contract a model file's ``extra`` metadata states (other keys are ignored)."""
        return cls(
            normalized=extra.get("data_normalization") == NORMALIZATION,
            density_weights=extra.get("density_weights") == DENSITY_WEIGHTS,
        )

    def to_extra(self) -> dict[str, str]:
        """The ``extra`` entries that state this contract (:meth:`from_extra` reads them)."""
        extra = {"data_normalization": NORMALIZATION} if self.normalized else {}
        return extra | ({"density_weights": DENSITY_WEIGHTS} if self.density_weights else {})


@dataclass(frozen=True)
class ModelInputs:
    """Data prepared for a network.

    Attributes:
        kspace: complex64 ``(coils, *samples)``, scaled as the operator and the contract say.
        op: the :class:`~blockrecon.physics.Sense` operator (scaled when normalized).
        aty: complex64 ``image_shape``: ``E^H W y`` of ``kspace``.
        aty_scale: 0-d float tensor, the least-squares scale of ``aty`` (``None``: not computed).
        intensity_scale: factor applied to the data (1 unless normalized); divide a
            reconstruction by it to get the data's own scale.
    """

    kspace: torch.Tensor
    op: Sense
    aty: torch.Tensor
    aty_scale: torch.Tensor | None = None
    intensity_scale: float = 1.0


def acquisition_maps(
    acq: Acquisition,
    estimate: bool = False,
    progress: bool = False,
    method: str = "espirit",
    calib_width: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """The acquisition's coil maps, or maps estimated from its k-space when it has none (or
    when ``estimate``) by ``method`` with ``calib_width`` and NUFFT ``backend`` (see
    :func:`~blockrecon.physics.maps.estimate_maps`). complex64 ``(coils, *image_shape)``."""
    if acq.maps is not None and not estimate:
        return acq.maps
    return estimate_maps(
        acq.kspace,
        acq.coord,
        acq.image_shape,
        method=method,
        calib_width=calib_width,
        progress=progress,
        backend=backend,
    )


def normalize(
    kspace: torch.Tensor,
    maps: torch.Tensor,
    coord: torch.Tensor,
    backend: str = "auto",
    weights: torch.Tensor | None = None,
) -> ModelInputs:
    """The normalized data of an acquisition (see the module docstring).

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        maps: complex ``(coils, *image_shape)``.
        coord: float32 ``(..., ndim)`` in grid units.
        backend: NUFFT backend.
        weights: sample weights of the operator, or ``None``; the norm is then that of
            ``E^H W E``.

    Returns:
        :class:`ModelInputs` with the scaled operator, k-space and ``aty``, ``aty_scale`` and
        ``intensity_scale = c``.

    Raises:
        ValueError: the k-space data are zero.
    """
    maps = maps.to(torch.complex64).clone()
    op = Sense(maps, coord, weights=weights, backend=backend)
    operator_scale = max_eigenvalue(op, n_iter=POWER_ITERATIONS) ** -0.5
    maps.mul_(operator_scale)  # op.maps is this tensor: E becomes a E, its Toeplitz kernel stays
    kspace = kspace.to(torch.complex64) * operator_scale
    with torch.no_grad():
        aty = op.normal_rhs(kspace)
        scale = adjoint_scale(aty, op)
        peak = (scale * aty.abs().max()).item()
    if not peak > 0:
        raise ValueError("the k-space data are zero: nothing to reconstruct")
    intensity_scale = 1.0 / peak
    return ModelInputs(kspace * intensity_scale, op, aty * intensity_scale, scale, intensity_scale)


def prepare_inputs(
    kspace: torch.Tensor,
    maps: torch.Tensor,
    coord: torch.Tensor,
    contract: DataContract,
    backend: str = "auto",
    dcf: torch.Tensor | None = None,
    progress: bool = False,
) -> ModelInputs:
    """The data of an acquisition as a model with ``contract`` takes it.

    Args:
        kspace: complex ``(coils, *coord.shape[:-1])``.
        maps: complex ``(coils, *image_shape)``.
        coord: float32 ``(..., ndim)`` in grid units.
        contract: the model's :class:`DataContract`.
        backend: NUFFT backend.
        dcf: density weights ``coord.shape[:-1]`` to use when the model takes them (e.g. an
            acquisition's stored DCF); ``None`` computes Pipe-Menon weights.
        progress: progress bar while computing density weights.
    """
    weights = None
    if contract.density_weights:
        weights = (
            dcf
            if dcf is not None
            else pipe_menon_dcf(coord, maps.shape[1:], backend=backend, progress=progress)
        )
    if contract.normalized:
        return normalize(kspace, maps, coord, backend=backend, weights=weights)
    op = Sense(maps, coord, weights=weights, backend=backend)
    with torch.no_grad():
        return ModelInputs(kspace, op, op.normal_rhs(kspace))


def reconstruct_with_model(
    model: UnrolledNet,
    kspace: torch.Tensor,
    maps: torch.Tensor,
    coord: torch.Tensor,
    extra: Mapping[str, Any],
    backend: str = "auto",
    dcf: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Apply an unrolled network to data prepared as it was trained (:func:`prepare_inputs`
    with the :class:`DataContract` of ``extra``, the model file's metadata).

    Args:
        model: :class:`~blockrecon.unrolled.UnrolledNet` (eval mode).
        kspace: complex ``(coils, *coord.shape[:-1])``.
        maps: complex ``(coils, *image_shape)``.
        coord: float32 ``(..., ndim)`` in grid units.
        extra: the model file's metadata.
        backend: NUFFT backend.
        dcf: density weights ``coord.shape[:-1]`` for a model that takes them; ``None``
            computes Pipe-Menon weights.
        progress: progress bar while computing density weights.

    Returns:
        complex64 image ``image_shape`` at the data's own scale, zero where every coil map is
        zero: no sample depends on those voxels (they are in the null space of ``E``), so the
        data cannot tell their value and a network's output there is not an image of the
        object (e.g. outside the support of estimated maps; a network trained
        self-supervised never sees those voxels at all).
    """
    inputs = prepare_inputs(
        kspace, maps, coord, DataContract.from_extra(extra), backend, dcf, progress
    )
    with torch.no_grad():
        image = model.solve(inputs.aty, inputs.op, inputs.aty_scale)
    return zero_where_unsensed(image, maps) / inputs.intensity_scale


def zero_where_unsensed(image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """``image`` (complex ``(*batch, *image_shape)``) set to 0 where every coil map
    (``(coils, *image_shape)``) is 0: voxels no sample depends on."""
    return image.where((maps != 0).any(dim=0), 0)


class PatchSizeError(ValueError):
    """A block-wise patch size that the model or the volume does not allow."""


def _overrides(
    stored: Any, path: str | os.PathLike[str], patch_size: int | None, cg_iterations: int | None
) -> dict[str, Any]:
    """The configuration entries that set ``patch_size`` and the CG data consistency's
    iterations of a model whose stored configuration is ``stored``."""
    overrides: dict[str, Any] = {} if patch_size is None else {"patch_size": patch_size}
    if cg_iterations is None:
        return overrides
    try:
        dc = resolve_config(stored)["dc"]
    except ValueError as err:
        raise ValueError(f"model file {path}: {err}") from err
    if dc["kind"] != "cg":
        raise ValueError(
            f"CG data-consistency iterations given, but the model's data "
            f"consistency is {dc['kind']!r}"
        )
    return overrides | {"dc": {**dc, "n_iter": cg_iterations}}


def load_for_inference(
    path: str | os.PathLike[str] | None = None,
    device: Any = None,
    image_shape: tuple[int, ...] | None = None,
    patch_size: int | None = None,
    cg_iterations: int | None = None,
) -> LoadedModel:
    """The network of a model file, read once and built once, in eval mode.

    Args:
        path: model file; ``None``: the shipped pretrained model.
        device: device of the model (default the CPU).
        image_shape: volume the model will reconstruct; its block-wise patches are planned
            now, so that a patch size that does not fit is refused before any work.
        patch_size: block-wise core size (``None``: the model's).
        cg_iterations: iterations of a CG data consistency (``None``: as trained).

    Returns:
        ``(model, config, extra)``: network, resolved configuration, metadata.

    Raises:
        FileNotFoundError, ValueError: the file (see :func:`~blockrecon.models.load_model`),
            or ``cg_iterations`` for a model without CG data consistency.
        PatchSizeError: the model or ``image_shape`` refuses ``patch_size``.
    """
    path = pretrained_path() if path is None else path
    file = read_unrolled_file(path, device)
    overrides = _overrides(file.config, path, patch_size, cg_iterations)
    try:
        loaded = model_from_file(file, path, device, overrides)
        regularizer = loaded.model.regularizers[0]
        if image_shape is not None and hasattr(regularizer, "plan"):
            regularizer.plan(image_shape)
    except ValueError as err:
        if patch_size is None:
            raise
        raise PatchSizeError(str(err)) from None
    return loaded
