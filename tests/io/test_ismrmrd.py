"""ISMRMRD import: files written with the ismrmrd package, axis order, units, and bad files."""

import os

import h5py
import ismrmrd
import numpy as np
import pytest
import torch
from ismrmrd import xsd

from blockrecon.io import Acquisition, read_ismrmrd, write_acquisition, write_ismrmrd

MATRIX_XYZ = (8, 6, 4)
FOV_MM_XYZ = (12.0, 12.0, 12.0)


def header_xml(matrix=MATRIX_XYZ, fov=FOV_MM_XYZ) -> str:
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=matrix[0], y=matrix[1], z=matrix[2]),
        fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]),
    )
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63870000),
        encoding=[
            xsd.encodingType(
                encodedSpace=space,
                reconSpace=space,
                encodingLimits=xsd.encodingLimitsType(),
                trajectory=xsd.trajectoryType.RADIAL,
            )
        ],
    )
    return header.toXML("utf-8")


def random_readouts(readouts=5, coils=3, samples=7, seed=0, limit=0.49):
    """kspace (readouts, coils, samples) complex64, normalized traj (readouts, samples, 3)."""
    rng = np.random.default_rng(seed)
    data = (
        rng.standard_normal((readouts, coils, samples))
        + 1j * rng.standard_normal((readouts, coils, samples))
    ).astype(np.complex64)
    traj = rng.uniform(-limit, limit, (readouts, samples, 3)).astype(np.float32)
    return data, traj


def write_with_ismrmrd(path, data, traj, noise=True, xml=None, **head):
    """Write readouts one by one through the ismrmrd package's own API."""
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dataset:
        dataset.write_xml_header(xml or header_xml())
        if noise:  # a noise scan of another length and no trajectory: must be skipped
            acq = ismrmrd.Acquisition.from_array(np.ones((data.shape[1], 16), np.complex64))
            acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            dataset.append_acquisition(acq)
        for r in range(len(data)):
            fields = {key: value(r) if callable(value) else value for key, value in head.items()}
            dataset.append_acquisition(ismrmrd.Acquisition.from_array(data[r], traj[r], **fields))
    return path


def test_reads_package_written_file_in_zyx_order(tmp_path):
    data, traj = random_readouts()
    path = write_with_ismrmrd(tmp_path / "scan.h5", data, traj)
    acq = read_ismrmrd(path)
    assert acq.image_shape == (4, 6, 8)
    assert acq.voxel_size_mm == (3.0, 2.0, 1.5)
    assert acq.kspace.dtype == torch.complex64 and acq.coord.dtype == torch.float32
    assert torch.equal(acq.kspace, torch.from_numpy(data.transpose(1, 0, 2)))
    # normalized (|k| <= 0.5) detected: scaled by the matrix and reversed to (kz, ky, kx)
    expected = traj[..., ::-1] * np.float32([4, 6, 8])
    np.testing.assert_allclose(acq.coord.numpy(), expected, rtol=1e-6)


def test_grid_units_detected_and_explicit_scale(tmp_path):
    data, traj = random_readouts()
    grid = traj * np.float32(MATRIX_XYZ)  # already [-N/2, N/2), |k| > 0.5
    acq = read_ismrmrd(write_with_ismrmrd(tmp_path / "grid.h5", data, grid))
    np.testing.assert_allclose(acq.coord.numpy(), grid[..., ::-1], rtol=1e-6)
    # stored in cycles/m (grid / FOV): the caller says how to convert
    per_metre = grid / (np.float32(FOV_MM_XYZ) * 1e-3)
    path = write_with_ismrmrd(tmp_path / "metre.h5", data, per_metre)
    acq = read_ismrmrd(path, traj_scale=[f * 1e-3 for f in FOV_MM_XYZ])
    np.testing.assert_allclose(acq.coord.numpy(), grid[..., ::-1], rtol=1e-5, atol=1e-6)


def test_edge_of_kspace_is_kept_and_beyond_is_refused(tmp_path):
    data, traj = random_readouts()
    traj[0, -1] = [0.5, -0.5, 0.5]  # a spoke that reaches the edge: the closed range holds it
    acq = read_ismrmrd(write_with_ismrmrd(tmp_path / "edge.h5", data, traj))
    assert acq.coord[0, -1].tolist() == [2.0, -3.0, 4.0]
    grid = traj * np.float32(MATRIX_XYZ)
    grid[0, -1, 1] = 3.01  # beyond +N/2 = 3 along y (image axis 1)
    with pytest.raises(ValueError, match=r"coord\[\.\.\., 1\] must lie in \[-6/2, 6/2\]"):
        read_ismrmrd(write_with_ismrmrd(tmp_path / "beyond.h5", data, grid))


def test_discarded_samples_are_dropped(tmp_path):
    data, traj = random_readouts(samples=9)
    path = write_with_ismrmrd(tmp_path / "scan.h5", data, traj, discard_pre=2, discard_post=1)
    acq = read_ismrmrd(path)
    assert torch.equal(acq.kspace, torch.from_numpy(data[:, :, 2:-1].transpose(1, 0, 2)))
    assert acq.coord.shape == (5, 6, 3)


def test_export_round_trip_and_readable_by_ismrmrd(tmp_path, acquisition):
    path = write_ismrmrd(tmp_path / "export.h5", acquisition)
    back = read_ismrmrd(path)
    assert back.image_shape == acquisition.image_shape
    assert back.voxel_size_mm == pytest.approx(acquisition.voxel_size_mm)
    assert torch.equal(back.kspace, acquisition.kspace)
    torch.testing.assert_close(back.coord, acquisition.coord, rtol=1e-6, atol=1e-6)
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as dataset:
        assert dataset.number_of_acquisitions() == 5
        third = dataset.read_acquisition(2)
        header = xsd.CreateFromDocument(dataset.read_xml_header())
    np.testing.assert_array_equal(third.data, acquisition.kspace[:, 2].numpy())
    np.testing.assert_allclose(
        third.traj, acquisition.coord[2].numpy()[:, ::-1] / [8, 6, 4], rtol=1e-6
    )
    matrix = header.encoding[0].encodedSpace.matrixSize
    assert (matrix.x, matrix.y, matrix.z) == MATRIX_XYZ


def test_export_grid_units_and_flattened_readouts(tmp_path, acquisition_factory):
    acq = acquisition_factory(readouts=6)
    acq = Acquisition(
        acq.kspace.reshape(3, 2, 3, 7),
        acq.coord.reshape(2, 3, 7, 3),
        acq.image_shape,
        acq.voxel_size_mm,
    )
    back = read_ismrmrd(write_ismrmrd(tmp_path / "e.h5", acq, normalized=False))
    assert torch.equal(back.kspace, acq.kspace.reshape(3, 6, 7))
    assert torch.equal(back.coord, acq.coord.reshape(6, 7, 3))


def test_export_of_invalid_or_2d_data_writes_nothing(tmp_path, acquisition):
    acquisition.kspace[1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        write_ismrmrd(tmp_path / "e.h5", acquisition)
    flat = Acquisition(
        torch.ones(1, 3, dtype=torch.complex64), torch.zeros(3, 2), (4, 4), (1.0, 1.0)
    )
    with pytest.raises(ValueError, match="needs a 3D acquisition"):
        write_ismrmrd(tmp_path / "e.h5", flat)
    assert os.listdir(tmp_path) == []


def test_missing_and_foreign_files(tmp_path, acquisition):
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        read_ismrmrd(tmp_path / "absent.h5")
    path = write_acquisition(tmp_path / "blockrecon.h5", acquisition)
    with pytest.raises(ValueError, match=f"{path}: no ISMRMRD group 'dataset'"):
        read_ismrmrd(path)


def readout_with_2d_trajectory(path, data, traj):
    return write_with_ismrmrd(path, data, traj[..., :2].copy())


def readout_without_trajectory(path, data, traj):
    with ismrmrd.Dataset(str(path), "dataset") as dataset:
        dataset.write_xml_header(header_xml())
        for r in range(len(data)):
            dataset.append_acquisition(ismrmrd.Acquisition.from_array(data[r]))
    return path


BAD_FILES = {
    "2D trajectory": (readout_with_2d_trajectory, "trajectory_dimensions 2"),
    "no trajectory": (readout_without_trajectory, "trajectory_dimensions 0"),
    "two repetitions": (
        lambda p, d, t: write_with_ismrmrd(
            p, d, t, idx=lambda r: ismrmrd.EncodingCounters(repetition=r % 2)
        ),
        "2 values of the 'repetition' counter",
    ),
    "NaN in data": (
        lambda p, d, t: write_with_ismrmrd(
            p, np.where(np.arange(7) == 3, np.nan, d).astype(np.complex64), t
        ),
        "non-finite",
    ),
    "out of range": (lambda p, d, t: write_with_ismrmrd(p, d, t * 20), "must lie in"),
    "only noise": (lambda p, d, t: write_with_ismrmrd(p, d[:0], t[:0]), "no imaging readouts"),
    "unequal readouts": (
        lambda p, d, t: write_with_ismrmrd(p, d, t, discard_pre=lambda r: r % 2),
        "differ in discard_pre",
    ),
    "bad header": (
        lambda p, d, t: write_with_ismrmrd(p, d, t, xml="<ismrmrdHeader"),
        "cannot parse the ISMRMRD XML header",
    ),
    "missing encoding": (
        lambda p, d, t: write_with_ismrmrd(p, d, t, encoding_space_ref=1),
        "no imaging readouts for encoding 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_naming_problem_and_file(tmp_path, case):
    write, message = BAD_FILES[case]
    data, traj = random_readouts()
    path = write(tmp_path / "bad.h5", data, traj)
    with pytest.raises(ValueError, match=message) as info:
        read_ismrmrd(path)
    assert str(path) in str(info.value)


def test_truncated_table(tmp_path):
    data, traj = random_readouts()
    path = write_with_ismrmrd(tmp_path / "scan.h5", data, traj, noise=False)
    with h5py.File(path, "r+") as f:
        record = f["dataset/data"][3]  # its data shorter than its header says
        record["data"] = record["data"][:-2]
        f["dataset/data"][3] = record
    with pytest.raises(ValueError, match="readout 3 has 40 data values, its header says 42"):
        read_ismrmrd(path)
