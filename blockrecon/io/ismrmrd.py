"""ISMRMRD import (and export) of 3D non-Cartesian acquisitions.

An ISMRMRD file is HDF5 with a group (``/dataset`` by default) holding ``xml`` (the header) and
``data`` (one record per readout: header, trajectory ``(samples, trajectory_dimensions)`` and
complex data ``(channels, samples)``). :func:`read_ismrmrd` turns the imaging readouts of one
encoding into an :class:`~blockrecon.io.Acquisition`:

* ``kspace``: complex64 ``(coils, readouts, samples)``; ``coord``: float32
  ``(readouts, samples, 3)``.
* Axis order. ISMRMRD names the encoding axes x (readout), y, z; blockrecon volumes are NumPy
  ordered ``(z, y, x)`` like SigPy and ISMRMRD's own image arrays. So ``image_shape`` is
  ``(matrix.z, matrix.y, matrix.x)`` of ``encodedSpace``, ``voxel_size_mm`` is
  ``fieldOfView_mm / matrixSize`` in the same order, and ``coord[..., d]`` is the trajectory
  reversed: ``(kz, ky, kx)``.
* Trajectory units. Files store either normalized units (``|k| <= 0.5``, 1/FOV scaled so that
  0.5 is the edge of k-space: the common Gadgetron convention) or grid units (already
  ``[-N/2, N/2]``). With ``traj_scale=None`` the reader detects which: a trajectory whose
  largest magnitude is at most 0.5 is taken as normalized and multiplied by the matrix size
  along each axis; anything larger is taken as grid units. Pass ``traj_scale`` (one number, or
  three for ``(kx, ky, kz)`` as stored) to override, e.g. when the trajectory was stored in
  rad/m or cycles/m. Samples exactly on ``+N/2`` (a radial spoke that reaches the edge) are
  kept: the coordinate range is closed.
* Skipped readouts: noise measurements, calibration-only, navigator, phase correction,
  feedback, dummy scans, surface-coil correction and phase stabilization (by ISMRMRD flags),
  and readouts of other encodings. ``discard_pre``/``discard_post`` samples are dropped.
* Data with several slices, contrasts, phases, repetitions or sets is refused (one volume per
  acquisition); averages are kept as additional readouts.

Every problem (not HDF5, no ISMRMRD group, unparsable header, inconsistent readouts, missing or
non-3D trajectory, out-of-range coordinates, NaN/Inf) raises ``ValueError`` naming the file.

:func:`write_ismrmrd` exports an acquisition (e.g. simulated data) in the same layout, readable
by the ``ismrmrd`` package and by Gadgetron.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import torch
from ismrmrd import xsd
from ismrmrd.hdf5 import acquisition_dtype, acquisition_header_dtype

from blockrecon.atomic import atomic_path
from blockrecon.io.hdf5 import open_hdf5, read_dataset
from blockrecon.physics.acquisition import Acquisition, check_acquisition, standard_dtypes

__all__ = ["read_ismrmrd", "write_ismrmrd"]

#: ISMRMRD flags (1-based bit numbers) of readouts that are not image data.
SKIPPED_FLAGS = (
    ismrmrd.ACQ_IS_NOISE_MEASUREMENT,
    ismrmrd.ACQ_IS_PARALLEL_CALIBRATION,
    ismrmrd.ACQ_IS_NAVIGATION_DATA,
    ismrmrd.ACQ_IS_PHASECORR_DATA,
    ismrmrd.ACQ_IS_HPFEEDBACK_DATA,
    ismrmrd.ACQ_IS_DUMMYSCAN_DATA,
    ismrmrd.ACQ_IS_RTFEEDBACK_DATA,
    ismrmrd.ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION_REFERENCE,
    ismrmrd.ACQ_IS_PHASE_STABILIZATION,
)
#: Encoding counters that must not vary inside one volume.
_SINGLE_VALUED_COUNTERS = ("slice", "contrast", "phase", "repetition", "set")
_NORMALIZED_LIMIT = 0.5 * (1 + 1e-5)
_UNIFORM_FIELDS = {
    "active_channels": "channels",
    "number_of_samples": "samples",
    "trajectory_dimensions": "trajectory dimensions",
    "discard_pre": "discard_pre",
    "discard_post": "discard_post",
}


def _read_header(handle: h5py.File, group: str, encoding: int, path: Path):
    """Parse the XML header and return the chosen ``encodingType``."""
    xml = np.ravel(read_dataset(handle, f"{group}/xml", path))
    try:
        header = xsd.CreateFromDocument(xml[0])
    except Exception as err:  # noqa: BLE001 - xsdata raises many types for bad XML
        raise ValueError(f"{path}: cannot parse the ISMRMRD XML header: {err}") from None
    if not 0 <= encoding < len(header.encoding):
        raise ValueError(
            f"{path}: encoding {encoding} requested, the header has {len(header.encoding)}"
        )
    return header.encoding[encoding]


def _geometry(space, path: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(image_shape, voxel_size_mm)`` in (z, y, x) order from an ``encodingSpaceType``."""
    matrix, fov = space.matrixSize, space.fieldOfView_mm
    shape = (int(matrix.z), int(matrix.y), int(matrix.x))
    if min(shape) < 1:
        raise ValueError(
            f"{path}: encodedSpace matrixSize {shape[::-1]} (x, y, z) must be positive"
        )
    voxel = tuple(float(f) / n for f, n in zip((fov.z, fov.y, fov.x), shape, strict=True))
    return shape, voxel


def _imaging_records(records: np.ndarray, encoding: int, path: Path) -> np.ndarray:
    """The records that hold image data of ``encoding``, in file order."""
    if records.dtype.names is None or not {"head", "traj", "data"} <= set(records.dtype.names):
        raise ValueError(f"{path}: 'data' is not an ISMRMRD acquisition table")
    head = records["head"]
    skip = sum(np.uint64(1) << np.uint64(flag - 1) for flag in SKIPPED_FLAGS)
    keep = ((head["flags"] & skip) == 0) & (head["encoding_space_ref"] == encoding)
    if not keep.any():
        raise ValueError(
            f"{path}: no imaging readouts for encoding {encoding} "
            f"({len(records)} readouts in the file, all skipped)"
        )
    kept = records[keep]
    for counter in _SINGLE_VALUED_COUNTERS:
        values = np.unique(kept["head"]["idx"][counter])
        if len(values) > 1:
            raise ValueError(
                f"{path}: readouts span {len(values)} values of the '{counter}' "
                "counter; blockrecon reads one volume per file"
            )
    return kept


def _uniform(head: np.ndarray, path: Path) -> dict[str, int]:
    """Header fields that must be equal across readouts, checked and returned."""
    values = {}
    for field, what in _UNIFORM_FIELDS.items():
        found = np.unique(head[field])
        if len(found) != 1:
            raise ValueError(
                f"{path}: readouts differ in {what} ({found.tolist()}); "
                "blockrecon needs equal readouts"
            )
        values[field] = int(found[0])
    if values["trajectory_dimensions"] != 3:
        raise ValueError(
            f"{path}: readouts have trajectory_dimensions "
            f"{values['trajectory_dimensions']}, a 3D non-Cartesian acquisition "
            "needs 3 (kx, ky, kz)"
        )
    return values


def _stack(column: np.ndarray, length: int, name: str, path: Path) -> np.ndarray:
    """Stack a column of variable-length float32 arrays that should all have ``length`` values."""
    sizes = np.fromiter((len(v) for v in column), dtype=np.int64, count=len(column))
    bad = np.flatnonzero(sizes != length)
    if len(bad):
        raise ValueError(
            f"{path}: readout {int(bad[0])} has {int(sizes[bad[0]])} {name} values, "
            f"its header says {length}"
        )
    return np.stack(list(column)).astype(np.float32, copy=False)


def _scale(
    traj: np.ndarray, traj_scale: float | Sequence[float] | None, image_shape: tuple[int, ...]
) -> np.ndarray:
    """Trajectory ``(..., 3)`` in (kx, ky, kz) -> grid units, still (kx, ky, kz)."""
    if traj_scale is None:
        normalized = np.abs(traj).max(initial=0.0) <= _NORMALIZED_LIMIT
        traj_scale = image_shape[::-1] if normalized else 1.0
    scale = np.broadcast_to(np.asarray(traj_scale, dtype=np.float64), (3,))
    return (traj * scale).astype(np.float32)


def read_ismrmrd(
    path: str | os.PathLike[str],
    *,
    traj_scale: float | Sequence[float] | None = None,
    group: str = "dataset",
    encoding: int = 0,
) -> Acquisition:
    """Read a 3D non-Cartesian ISMRMRD file into an :class:`~blockrecon.io.Acquisition`.

    Args:
        path: ISMRMRD HDF5 file.
        traj_scale: factor from the stored trajectory to grid units, one number or three for
            (kx, ky, kz); ``None`` detects normalized (``|k| <= 0.5``) vs grid units (module
            docstring).
        group: HDF5 group of the ISMRMRD dataset.
        encoding: which ``<encoding>`` of the header (and ``encoding_space_ref``) to read.

    Returns:
        Acquisition with ``kspace`` complex64 ``(coils, readouts, samples)``, ``coord`` float32
        ``(readouts, samples, 3)`` in (z, y, x) grid units, ``image_shape`` and
        ``voxel_size_mm`` in (z, y, x) order from ``encodedSpace``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file and the problem.
    """
    path = Path(path)
    with open_hdf5(path) as handle:
        if not isinstance(handle.get(group), h5py.Group):
            raise ValueError(f"{path}: no ISMRMRD group '{group}' in the file")
        image_shape, voxel_size_mm = _geometry(
            _read_header(handle, group, encoding, path).encodedSpace, path
        )
        records = _imaging_records(read_dataset(handle, f"{group}/data", path), encoding, path)
    sizes = _uniform(records["head"], path)
    channels, samples = sizes["active_channels"], sizes["number_of_samples"]
    kept = slice(sizes["discard_pre"], samples - sizes["discard_post"])
    data = _stack(records["data"], 2 * channels * samples, "data", path)
    kspace = data.view(np.complex64).reshape(len(records), channels, samples)[:, :, kept]
    traj = _stack(records["traj"], 3 * samples, "trajectory", path)
    traj = traj.reshape(len(records), samples, 3)[:, kept]
    coord = _scale(traj, traj_scale, image_shape)[..., ::-1]
    acquisition = Acquisition(
        kspace=torch.from_numpy(np.ascontiguousarray(kspace.transpose(1, 0, 2))),
        coord=torch.from_numpy(np.ascontiguousarray(coord)),
        image_shape=image_shape,
        voxel_size_mm=voxel_size_mm,
    )
    check_acquisition(acquisition, str(path))
    return acquisition


def _header_xml(acquisition: Acquisition, readouts: int) -> str:
    """ISMRMRD XML header for an acquisition whose image axes are (z, y, x)."""
    nz, ny, nx = acquisition.image_shape
    dz, dy, dx = acquisition.voxel_size_mm
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=nz),
        fieldOfView_mm=xsd.fieldOfViewMm(x=nx * dx, y=ny * dy, z=nz * dz),
    )
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=readouts - 1, center=0)
    )
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[
            xsd.encodingType(
                encodedSpace=space,
                reconSpace=space,
                encodingLimits=limits,
                trajectory=xsd.trajectoryType.OTHER,
            )
        ],
    )
    return xsd.ToXML(header, encoding="utf-8")


def _records(kspace: np.ndarray, traj: np.ndarray) -> np.ndarray:
    """ISMRMRD acquisition table for kspace ``(readouts, coils, samples)``, traj ``(r, s, 3)``."""
    readouts, coils, samples = kspace.shape
    template = ismrmrd.Acquisition.from_array(kspace[0], traj[0])
    records = np.empty(readouts, dtype=acquisition_dtype)
    records["head"] = np.frombuffer(template.getHead(), dtype=acquisition_header_dtype)
    records["head"]["scan_counter"] = np.arange(readouts)
    records["head"]["idx"]["kspace_encode_step_1"] = np.arange(readouts) % 65536
    records["head"]["flags"][-1] |= np.uint64(1) << np.uint64(ismrmrd.ACQ_LAST_IN_MEASUREMENT - 1)
    for column, values in (("data", kspace.view(np.float32)), ("traj", traj)):
        cells = np.empty(readouts, dtype=object)
        cells[:] = list(values.reshape(readouts, -1))
        records[column] = cells
    return records


def write_ismrmrd(
    path: str | os.PathLike[str], acquisition: Acquisition, *, normalized: bool = True
) -> Path:
    """Write a 3D acquisition as an ISMRMRD file, atomically.

    Every sample axis but the last becomes a readout: kspace ``(coils, *readout_axes, samples)``
    is stored as ``prod(readout_axes)`` ISMRMRD acquisitions of ``samples`` samples (at most
    65535, an ISMRMRD limit). Trajectories are stored as (kx, ky, kz), i.e. ``coord`` reversed,
    in normalized units (``coord / N``, the Gadgetron convention) or, with
    ``normalized=False``, in grid units. Only k-space, trajectory and geometry are stored; maps,
    dcf and image have no place in ISMRMRD acquisitions and are left out.

    Raises:
        ValueError: ``"<path>: <problem>"`` if the acquisition is invalid, not 3D, or its
            readouts are too long (nothing is written).
    """
    path = Path(path)
    acquisition = standard_dtypes(acquisition)
    check_acquisition(acquisition, str(path))
    if len(acquisition.image_shape) != 3:
        raise ValueError(
            f"{path}: ISMRMRD export needs a 3D acquisition, "
            f"got image_shape {acquisition.image_shape}"
        )
    samples = acquisition.sample_shape[-1]
    if samples > np.iinfo(np.uint16).max:
        raise ValueError(
            f"{path}: readouts of {samples} samples exceed ISMRMRD's 65535; "
            "reshape the samples into (readouts, samples)"
        )
    kspace = acquisition.kspace.detach().cpu().numpy().reshape(acquisition.num_coils, -1, samples)
    traj = acquisition.coord.detach().cpu().numpy().reshape(-1, samples, 3)[..., ::-1]
    if normalized:
        traj = traj / np.asarray(acquisition.image_shape[::-1], dtype=np.float32)
    records = _records(
        np.ascontiguousarray(kspace.transpose(1, 0, 2)),
        np.ascontiguousarray(traj, dtype=np.float32),
    )
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        group = handle.create_group("dataset")
        group.create_dataset(
            "xml",
            data=[_header_xml(acquisition, len(records)).encode()],
            dtype=h5py.special_dtype(vlen=bytes),
        )
        group.create_dataset("data", data=records, maxshape=(None,), chunks=True)
    return path
