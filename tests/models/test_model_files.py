"""Model configurations (build_unrolled) and model files (save_model / load_model)."""

from __future__ import annotations

import json

import pytest
import torch

from blockrecon.models import (
    DEFAULT_CONFIG,
    build_unrolled,
    default_config,
    load_model,
    resolve_config,
    save_model,
)
from blockrecon.physics import Sense, birdcage_maps, radial_3d

SIZE = 12
TINY = {"regularizer": {"width": 4, "n_layers": 2}, "n_unrolls": 2, "patch_size": 6}


@pytest.fixture(scope="module")
def problem() -> tuple[torch.Tensor, Sense]:
    """Random k-space and a 2-coil radial SENSE operator on a SIZE^3 grid."""
    torch.manual_seed(0)
    op = Sense(birdcage_maps(2, (SIZE,) * 3), radial_3d(40, SIZE))
    image = torch.randn((SIZE,) * 3, dtype=torch.complex64)
    return op(image), op


def reconstruct(model: torch.nn.Module, problem) -> torch.Tensor:
    kspace, op = problem
    with torch.no_grad():
        return model(kspace, op)


def test_default_config_is_complete_and_json_round_trips():
    resolved = resolve_config(None)
    assert resolved == DEFAULT_CONFIG
    assert json.loads(json.dumps(resolved)) == resolved
    assert resolve_config(resolved) == resolved
    default_config()["regularizer"]["width"] = 1  # a copy: the documented default stays intact
    assert DEFAULT_CONFIG["regularizer"]["width"] == 32


def test_partial_config_takes_the_defaults_of_its_kind():
    resolved = resolve_config({"regularizer": {"kind": "unet"}, "dc": {"kind": "cg", "n_iter": 3}})
    assert resolved["regularizer"] == {"kind": "unet", "base_width": 8, "depth": 2}
    assert resolved["dc"] == {
        "kind": "cg",
        "lam": 0.05,
        "n_iter": 3,
        "tol": 0.0,
        "learnable": True,
        "preconditioner": "none",
        "backward": "implicit",
    }
    assert resolved["n_unrolls"] == DEFAULT_CONFIG["n_unrolls"]


def test_built_network_follows_the_config():
    model = build_unrolled(
        {
            **TINY,
            "share_weights": False,
            "n_unrolls": 3,
            "patch_batch": 4,
            "dc": {"kind": "cg", "lam": 0.1, "n_iter": 2, "preconditioner": "circulant"},
        }
    )
    assert model.n_unrolls == 3 and len(model.regularizers) == 3
    assert model.dcs[0].preconditioner == "circulant"
    net = model.regularizers[0].net
    assert net.body[0].out_channels == 4 and net.margin == 2
    assert float(model.dcs[0].lam.detach()) == pytest.approx(0.1)
    assert model.regularizers[0].patch_size == (6, 6, 6)
    assert model.regularizers[0].patch_batch == 4


@pytest.mark.parametrize(
    "config, named",
    [
        ({"n_unrols": 3}, "n_unrols"),
        ({"regularizer": {"kind": "resnet3d", "depth": 2}}, "depth"),
        ({"regularizer": {"kind": "transformer"}}, "transformer"),
        ({"dc": {"kind": "admm"}}, "admm"),
        ({"dc": {"kind": "cg", "step": 1.0}}, "step"),
        ({"n_unrolls": 2.5}, "n_unrolls"),
        ({"share_weights": 1}, "share_weights"),
        ({"init": "gridding"}, "init"),
        ({"padding": "circular"}, "padding"),
        ({"patch_size": [8, 8]}, "patch_size"),
        ({"patch_batch": 0}, "patch_batch"),
        ({"regularizer": "resnet3d"}, "regularizer"),
        ({"regularizer": {"width": 0}}, "width"),
        ({"n_unrolls": 0}, "n_unrolls"),
        ({"dc": {"kind": "cg", "preconditioner": "ilu"}}, "preconditioner"),
        ({"dc": {"kind": "cg", "preconditioner": None}}, "preconditioner"),
        ({"dc": {"kind": "cg", "backward": "finite"}}, "backward"),
    ],
)
def test_invalid_config_is_rejected_by_name(config, named):
    with pytest.raises(ValueError, match=named):
        build_unrolled(config)


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        {
            **TINY,
            "regularizer": {"kind": "unet", "base_width": 2, "depth": 2},
            "patch_size": 6,
            "dc": {"kind": "cg", "n_iter": 2},
            "init": "zeros",
            "padding": "zeros",
        },
    ],
)
def test_save_load_round_trip_reproduces_outputs(tmp_path, problem, config):
    torch.manual_seed(1)
    model = build_unrolled(config)
    with torch.no_grad():  # move every parameter off its initial value
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    extra = {
        "acceleration": 8.0,
        "image_size": SIZE,
        "snr_db": 40.0,
        "seed": 3,
        "metrics": {"psnr_db": 30.5},
    }
    path = save_model(tmp_path / "model.pt", model, config, extra)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind
    loaded, loaded_config, loaded_extra = load_model(path)
    assert loaded_config == resolve_config(config)
    assert loaded_extra == extra
    assert not loaded.training
    torch.testing.assert_close(
        reconstruct(loaded, problem), reconstruct(model, problem), rtol=0, atol=0
    )


def test_patch_size_override_keeps_the_weights_and_the_result(tmp_path, problem):
    model = build_unrolled(TINY)
    path = save_model(tmp_path / "m.pt", model, TINY)
    whole, config, _ = load_model(path, overrides={"patch_size": None})
    assert config["patch_size"] is None
    torch.testing.assert_close(
        reconstruct(whole, problem), reconstruct(model, problem), rtol=1e-4, atol=1e-5
    )


def test_other_architecture_is_named(tmp_path):
    path = save_model(tmp_path / "m.pt", build_unrolled(TINY), TINY)
    with pytest.raises(ValueError, match=r"body\.0\.weight has shape \(4, 2, 3, 3, 3\)"):
        load_model(path, overrides={"regularizer": {"width": 5, "n_layers": 2}})
    payload = torch.load(path, weights_only=True)
    payload["config"]["n_unrolls"] = 2
    payload["config"]["share_weights"] = False
    torch.save(payload, tmp_path / "unshared.pt")
    with pytest.raises(ValueError, match=r"missing dcs\.1\.step, regularizers\.1\."):
        load_model(tmp_path / "unshared.pt")


def test_save_refuses_a_model_that_is_not_the_config(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        save_model(
            tmp_path / "m.pt",
            build_unrolled(TINY),
            {**TINY, "regularizer": {"width": 6, "n_layers": 2}},
        )
    with pytest.raises(ValueError, match="JSON"):
        save_model(tmp_path / "m.pt", build_unrolled(TINY), TINY, {"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "absent.pt")
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="not a blockrecon model file: .*notes.pt"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a blockrecon model file"):
        load_model(other)
    payload = torch.load(
        save_model(tmp_path / "m.pt", build_unrolled(TINY), TINY), weights_only=True
    )
    del payload["state_dict"]
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="lacks state_dict"):
        load_model(tmp_path / "partial.pt")
    payload["state_dict"], payload["format_version"] = {}, 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99"):
        load_model(tmp_path / "future.pt")


class _Payload:
    """Not plain data: loading it would need to run code."""


def test_loading_never_unpickles_code(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"format": "blockrecon.unrolled", "config": _Payload()}, path)
    with pytest.raises(ValueError, match="not a blockrecon model file: .*unsafe.pt .*plain data"):
        load_model(path)
