"""Save and load segmentation U-Nets together with their architecture (pruned widths included)."""

from __future__ import annotations

from pathlib import Path

import torch

from blockrecon.atomic import atomic_write
from blockrecon.nn.unet import UNet
from blockrecon.torch_file import read_torch_payload

_FORMAT = "blockrecon.seg.unet/1"


def save_model(model: UNet, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``model`` (config + weights + ``extra`` metadata) atomically to ``path``."""
    payload = {"format": _FORMAT, "config": model.config, "state_dict": model.state_dict(),
               "extra": dict(extra or {})}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path) -> dict:
    """The validated checkpoint dictionary (keys format, config, state_dict, extra), read
    safely by :func:`blockrecon.torch_file.read_torch_payload`."""
    return read_torch_payload(path, _FORMAT, ("config", "state_dict", "extra"),
                              "blockrecon segmentation checkpoint")


def _load_state(model: UNet, state: dict, path: Path) -> None:
    own = model.state_dict()
    for key in sorted(set(own) | set(state)):
        if key not in own or key not in state or own[key].shape != state[key].shape:
            got = tuple(state[key].shape) if key in state else "missing"
            want = tuple(own[key].shape) if key in own else "missing"
            raise ValueError(f"{path}: architecture mismatch at {key}: checkpoint {got}, "
                             f"model {want}")
    model.load_state_dict(state)


def load_model(path: str | Path) -> tuple[UNet, dict]:
    """Rebuild the saved U-Net (in eval mode) and return it with its ``extra`` metadata."""
    payload = read_checkpoint(path)
    try:
        model = UNet(**payload["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid architecture config ({err})") from err
    _load_state(model, payload["state_dict"], Path(path))
    return model.eval(), payload["extra"]


def load_weights(model: UNet, path: str | Path) -> UNet:
    """Load saved weights into ``model``; ValueError if the saved architecture differs."""
    payload = read_checkpoint(path)
    if payload["config"] != model.config:
        diff = sorted(k for k in model.config if payload["config"].get(k) != model.config[k])
        raise ValueError(f"{path}: checkpoint architecture differs from the model in {diff}")
    _load_state(model, payload["state_dict"], Path(path))
    return model
