"""ULM maps on disk: density and mean velocity as NIfTI, and a maximum-intensity projection PNG.

A map of :class:`~blockrecon.ulm.maps.TrackMaps` lies on the fine grid, depth first. It is
written as a ``"zyx"`` volume of :func:`blockrecon.io.nifti.write_nifti` (depth along NIfTI z);
a 2D map ``(nz, nx)`` becomes the volume ``(nz, 1, nx)``, its single y voxel as wide as a
lateral one. Voxel sizes are the fine pixel sizes, converted from lambda to millimetres with the
acquisition's wavelength.

- Density: float32 counts of interpolated track points per fine voxel.
- Velocity (:func:`velocity_path`, ``<stem>_velocity.nii[.gz]`` next to the density): the mean
  velocity of the tracks through each voxel, mm/s, as one NIfTI vector image (components along
  x, y, z; :func:`blockrecon.io.nifti.write_nifti_vector`), zero where no track passes; the
  speed is its norm. One vector file keeps the direction, which a speed map would lose, and
  needs no second naming rule per component.
- MIP: ``density ** 0.5`` (a square root, as PALA displays its density maps) on a ``hot``
  colour map, depth down and lateral across; a 3D map is projected along its elevation axis
  (axis 1) by its maximum.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from blockrecon.atomic import atomic_paths, atomic_write
from blockrecon.io.nifti import write_nifti, write_nifti_vector
from blockrecon.ulm.maps import TrackMaps

__all__ = ["velocity_path", "voxel_size_mm", "write_mip_png", "write_track_maps"]

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def velocity_path(density_path: str | os.PathLike[str]) -> Path:
    """``<stem>_velocity<suffix>`` next to the density file ``<stem><suffix>`` (NIfTI suffix).

    Raises:
        ValueError: ``density_path`` does not end in ``.nii`` or ``.nii.gz``.
    """
    path = Path(density_path)
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(f"{path.name[: -len(suffix)]}_velocity{suffix}")
    raise ValueError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")


def voxel_size_mm(maps: TrackMaps, wavelength: float) -> tuple[float, float, float]:
    """Fine voxel size ``(z, y, x)`` in mm of the NIfTI volume of ``maps`` (see the module
    docstring), ``wavelength`` in metres."""
    size = [p * wavelength * 1e3 for p in maps.pixel_size]
    return tuple(size if len(size) == 3 else [size[0], size[1], size[1]])


def _volume(image: torch.Tensor) -> torch.Tensor:
    """A fine 2D ``(nz, nx)`` or 3D map as a ``(nz, ny, nx)`` volume."""
    return image.unsqueeze(1) if image.ndim == 2 else image


def write_track_maps(
    path: str | os.PathLike[str],
    maps: TrackMaps,
    wavelength: float,
    velocity: bool = False,
    mip: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the density of ``maps`` to ``path`` (NIfTI), with ``velocity`` the mean velocity
    to :func:`velocity_path`, and with ``mip`` the density's maximum-intensity projection PNG
    there (see the module docstring): all of these files or, if one fails, none of them
    (:func:`blockrecon.atomic.atomic_paths`). Returns the paths written.

    Args:
        wavelength: lambda in metres (mm = lambda * wavelength * 1000).
    """
    targets = [Path(path)] + ([velocity_path(path)] if velocity else [])
    targets += [Path(mip)] if mip is not None else []
    size = voxel_size_mm(maps, wavelength)
    with atomic_paths(targets) as staged:
        write_nifti(staged[0], _volume(maps.density), size)
        if velocity:
            components = maps.velocity * (wavelength * 1e3)  # lambda/s -> mm/s, (ndim, *fine)
            if components.shape[0] == 2:  # (z, x) -> (z, y = 0, x)
                components = torch.stack(
                    [components[0], torch.zeros_like(components[0]), components[1]]
                )
            field = torch.stack([_volume(c) for c in components])
            write_nifti_vector(staged[1], field, size)
        if mip is not None:
            write_mip_png(staged[-1], maps.density, (size[0], size[2]))
    return targets


def write_mip_png(
    path: str | os.PathLike[str], density: torch.Tensor, pixel_size_mm: tuple[float, float]
) -> Path:
    """Write the maximum-intensity projection of a density map as a PNG (see the module
    docstring), atomically.

    Args:
        density: ``(nz, nx)`` or ``(nz, ny, nx)`` fine map.
        pixel_size_mm: fine (depth, lateral) pixel size in mm (for the axes' extent).
    """
    from matplotlib.figure import Figure

    if not isinstance(density, torch.Tensor) or density.ndim not in (2, 3):
        raise ValueError("density must be a tensor with 2 or 3 axes")
    image = density.detach().cpu().double().numpy()
    if image.ndim == 3:
        image = image.max(axis=1)
    depth, lateral = pixel_size_mm
    extent = (0.0, image.shape[1] * lateral, image.shape[0] * depth, 0.0)
    fig = Figure(figsize=(6, 6 * image.shape[0] * depth / (image.shape[1] * lateral) + 0.8))
    ax = fig.add_subplot()
    shown = ax.imshow(np.sqrt(np.maximum(image, 0)), cmap="hot", extent=extent, aspect="equal")
    ax.set_xlabel("lateral (mm)")
    ax.set_ylabel("depth (mm)")
    ax.set_title(
        "density (square root)" + (", maximum along elevation" if density.ndim == 3 else "")
    )
    fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.tight_layout()
    return atomic_write(path, lambda temporary: fig.savefig(temporary, format="png", dpi=100))
