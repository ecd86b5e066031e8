"""Save and load segmentation U-Nets together with their architecture (pruned widths included).

The file has the layout of every blockrecon model file (:mod:`blockrecon.torch_file`): ``config``
is the U-Net's ``config`` (widths, depth, normalization...), ``extra`` any metadata (training
losses, pruning ratio...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blockrecon.nn.unet import UNet
from blockrecon.torch_file import (
    FileKind,
    LoadedModel,
    damaged_file,
    read_model_file,
    save_model_file,
)

#: Segmentation model files (``blockrecon.seg.unet/1`` files, without a version, read too).
UNET_FILE = FileKind(
    "blockrecon.seg.unet",
    1,
    "blockrecon segmentation checkpoint",
    legacy_formats=("blockrecon.seg.unet/1",),
)


def save_model(
    path: str | os.PathLike[str], model: UNet, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` (config + weights + ``extra`` metadata) atomically to ``path``."""
    return save_model_file(path, model.state_dict(), model.config, dict(extra or {}), UNET_FILE)


def _load_state(model: UNet, state: dict, path: str | os.PathLike[str]) -> None:
    """Load ``state`` into ``model``; ValueError naming the first entry of another shape."""
    own = model.state_dict()
    for key in sorted(set(own) | set(state)):
        if key not in own or key not in state or own[key].shape != state[key].shape:
            got = tuple(state[key].shape) if key in state else "missing"
            want = tuple(own[key].shape) if key in own else "missing"
            raise ValueError(
                f"{path}: architecture mismatch at {key}: checkpoint {got}, model {want}"
            )
    model.load_state_dict(state)


def load_model(path: str | os.PathLike[str], device: Any = None) -> LoadedModel:
    """Rebuild the saved U-Net: ``(model in eval mode, its config, extra metadata)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a segmentation checkpoint, a damaged one, or weights of another
            architecture (names the first mismatch).
    """
    file = read_model_file(path, UNET_FILE)
    with damaged_file(path, UNET_FILE.name):
        model = UNet(**file.config)
    _load_state(model, file.state, path)
    return LoadedModel(model.to(device or "cpu").eval(), dict(file.config), dict(file.extra))


def load_weights(model: UNet, path: str | os.PathLike[str]) -> UNet:
    """Load saved weights into ``model``; ValueError if the saved architecture differs."""
    file = read_model_file(path, UNET_FILE)
    if file.config != model.config:
        diff = sorted(k for k in model.config if file.config.get(k) != model.config[k])
        raise ValueError(f"{path}: checkpoint architecture differs from the model in {diff}")
    _load_state(model, file.state, path)
    return model
