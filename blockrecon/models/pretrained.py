"""The pretrained unrolled network shipped inside the package.

``pretrained_unrolled.pt`` is produced by ``scripts/train_pretrained.py`` from its seed
(architecture, training data and held-out metrics are in the file's ``extra`` metadata). It is
found through :mod:`importlib.resources`, so it works from an installed wheel as well as from a
source checkout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from blockrecon.models.files import load_model, model_metadata
from blockrecon.unrolled import UnrolledNet

PRETRAINED_FILE = "pretrained_unrolled.pt"


def pretrained_path() -> Path:
    """Path of the shipped model file.

    Raises:
        FileNotFoundError: the package was installed without its model file.
    """
    path = Path(str(resources.files("blockrecon.models").joinpath(PRETRAINED_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained model {path} is not installed; produce it "
                                "with scripts/train_pretrained.py")
    return path


def load_pretrained(map_location: Any = "cpu", overrides: Mapping[str, Any] | None = None
                    ) -> tuple[UnrolledNet, dict[str, Any], dict[str, Any]]:
    """The shipped network in eval mode, its configuration and its metadata.

    Args:
        map_location: device of the returned model.
        overrides: configuration entries that do not change the weights, e.g.
            ``{"patch_size": 24, "patch_batch": 1}`` (see :func:`~blockrecon.models.load_model`).

    Returns:
        ``(model, config, extra)``; ``extra`` describes the training setting (``image_size``,
        ``acceleration``, ``snr_db``, ``n_coils``, ``seed``...) and the held-out metrics.
    """
    return load_model_or_pretrained(None, map_location, overrides)


def load_model_or_pretrained(path: str | os.PathLike[str] | None = None,
                             map_location: Any = "cpu",
                             overrides: Mapping[str, Any] | None = None
                             ) -> tuple[UnrolledNet, dict[str, Any], dict[str, Any]]:
    """``(model, config, extra)`` from the model file at ``path``, or the shipped model when
    ``path`` is None (what the ``--model`` options of the command line do)."""
    path = pretrained_path() if path is None else path
    model, config = load_model(path, map_location=map_location, overrides=overrides)
    return model, config, model_metadata(path)
