"""The pretrained unrolled network shipped inside the package.

``pretrained_unrolled.pt`` is produced by ``scripts/train_pretrained.py`` from its seed
(architecture, training data and held-out metrics are in the file's ``extra`` metadata). It is
found through :mod:`importlib.resources`, so it works from an installed wheel as well as from a
source checkout.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from blockrecon.models.files import load_model
from blockrecon.torch_file import LoadedModel

PRETRAINED_FILE = "pretrained_unrolled.pt"


def pretrained_path() -> Path:
    """Path of the shipped model file.

    Raises:
        FileNotFoundError: the package was installed without its model file.
    """
    path = Path(str(resources.files("blockrecon.models").joinpath(PRETRAINED_FILE)))
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained model {path} is not installed; produce it "
            "with scripts/train_pretrained.py"
        )
    return path


def load_pretrained(device: Any = None, overrides: Mapping[str, Any] | None = None) -> LoadedModel:
    """The shipped network in eval mode, its configuration and its metadata.

    Args:
        device: device of the returned model (default the CPU).
        overrides: configuration entries that do not change the weights, e.g.
            ``{"patch_size": 24, "patch_batch": 1}`` (see :func:`~blockrecon.models.load_model`).

    Returns:
        ``(model, config, extra)``; ``extra`` describes the training setting (``image_size``,
        ``acceleration``, ``snr_db``, ``n_coils``, ``seed``...) and the held-out metrics.
    """
    return load_model(pretrained_path(), device, overrides)
