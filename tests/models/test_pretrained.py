"""The pretrained model shipped in the package, and its use by ``blockrecon demo``."""

from __future__ import annotations

import json

import pytest
import torch

from blockrecon import demo
from blockrecon.cli import main
from blockrecon.inference import DataContract
from blockrecon.models import load_pretrained, pretrained_path, resolve_config
from blockrecon.physics import (
    Sense,
    pipe_menon_dcf,
    radial_3d,
    simulate_acquisition,
)
from blockrecon.physics.trajectory import radial_spokes
from blockrecon.recon import cg_sense, nrmse, psnr

#: A size below the training size keeps the test fast; the network is convolutional.
SIZE = 16
HELD_OUT_SEED = 987_654


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained()


def test_shipped_file_is_small_and_complete(pretrained):
    assert pretrained_path().stat().st_size <= 5 * 2**20
    model, config, extra = pretrained
    assert config == resolve_config(config)
    assert not model.training
    for key in ("image_size", "acceleration", "snr_db", "n_coils", "seed", "metrics"):
        assert key in extra, key


def test_overrides_change_the_patches_not_the_weights(pretrained):
    model, _, _ = pretrained
    small, config, _ = load_pretrained(overrides={"patch_size": 8, "patch_batch": 1})
    assert config["patch_size"] == 8 and small.regularizers[0].patch_size == (8, 8, 8)
    for a, b in zip(model.state_dict().values(), small.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_improves_clearly_on_its_starting_point(pretrained):
    """Held-out random ellipsoids at the training acceleration, SNR and coils: far better than
    the scaled adjoint it starts from, and better than CG-SENSE."""
    model, _, extra = pretrained
    coord = radial_3d(radial_spokes(SIZE, extra["acceleration"]), SIZE)
    acq = simulate_acquisition(
        coord,
        (SIZE,) * 3,
        n_coils=extra["n_coils"],
        phantom="ellipsoids",
        snr_db=extra["snr_db"],
        seed=HELD_OUT_SEED,
    )
    weights = (
        pipe_menon_dcf(coord, acq.image_shape, progress=False)
        if DataContract.from_extra(extra).density_weights
        else None
    )
    op = Sense(acq.maps, coord, weights=weights)
    with torch.no_grad():
        start = model.initial_image(op.normal_rhs(acq.kspace), op)
        image = model(acq.kspace, op)
    assert image.shape == acq.image.shape and image.dtype == torch.complex64
    assert nrmse(image, acq.image) < 0.5 * nrmse(start, acq.image)
    assert psnr(image, acq.image) > psnr(start, acq.image) + 6.0
    reference = cg_sense(acq.kspace, coord, acq.maps, n_iter=20, progress=False)  # as the demo
    assert nrmse(image, acq.image) < nrmse(reference, acq.image)


def test_beats_cg_sense_and_l1_wavelet_at_its_training_setting(pretrained):
    """One held-out random-ellipsoid volume at the training size, coils, acceleration and SNR
    (a seed outside the training and evaluation seeds), methods configured as the demo's."""
    _, _, extra = pretrained
    size = extra["image_size"]
    coord = radial_3d(radial_spokes(size, extra["acceleration"]), size)
    acq = simulate_acquisition(
        coord,
        (size,) * 3,
        n_coils=extra["n_coils"],
        phantom="ellipsoids",
        snr_db=extra["snr_db"],
        seed=HELD_OUT_SEED,
    )
    methods = {**demo.classical_methods(acq, progress=False), **demo.mbdl_method(acq)}
    rows = {row["method"]: row for row in demo.quality_rows(demo.run_demo(methods), acq.image)}
    mbdl = rows.pop(demo.MBDL_NAME)
    for name in ("CG-SENSE", "L1-wavelet CS"):
        assert mbdl["psnr_db"] > rows[name]["psnr_db"] + 1.0, name
        assert mbdl["ssim"] > rows[name]["ssim"], name
        assert mbdl["nrmse"] < rows[name]["nrmse"], name


def test_demo_command_adds_the_learned_method(tmp_path, capsys):
    assert (
        main(["demo", "--size", "16", "--coils", "4", "--no-progress", "--out", str(tmp_path)]) == 0
    )
    rows = json.loads((tmp_path / "results.json").read_text())
    names = [row["method"] for row in rows]
    assert names == ["gridding", "CG-SENSE", "L1-wavelet CS", demo.MBDL_NAME]
    assert demo.MBDL_NAME in capsys.readouterr().out
    assert (tmp_path / "mbdl_block_wise.nii.gz").is_file()
    assert (tmp_path / "demo.png").stat().st_size > 0
    by_name = {row["method"]: row for row in rows}
    assert by_name[demo.MBDL_NAME]["psnr_db"] > by_name["gridding"]["psnr_db"]


def test_demo_command_reports_a_missing_model_file(tmp_path, capsys):
    assert (
        main(["demo", "--size", "16", "--no-progress", "--model", str(tmp_path / "absent.pt")]) == 2
    )
    assert "absent.pt" in capsys.readouterr().err
