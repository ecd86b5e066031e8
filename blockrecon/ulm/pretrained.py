"""The trained ULM detection networks shipped inside the package, one per dimensionality.

``pretrained_ulm2d.pt`` (a sparse network trained on 16x16 fields at lambda/2 pixels) and
``pretrained_ulm3d.pt`` (a sparse network trained on the source's 32^3 block at lambda/2 voxels,
16-frame blocks) are ordinary ULM model files
(:mod:`blockrecon.ulm.training`), produced from a fixed seed by ``scripts/train_ulm_models.py``;
their ``extra`` metadata holds the seed, the training settings and time, and the held-out scores
against conventional ULM. They are found through :mod:`importlib.resources`, so they work from
an installed wheel as well as from a source checkout. ``blockrecon ulm evaluate`` and ``ulm map``
use them when no ``--model`` is given.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from blockrecon.torch_file import LoadedModel
from blockrecon.ulm.training import load_model

#: File name of the shipped network per number of spatial axes.
PRETRAINED_FILES = {2: "pretrained_ulm2d.pt", 3: "pretrained_ulm3d.pt"}
#: The script that produces them.
TRAINING_SCRIPT = "scripts/train_ulm_models.py"


def pretrained_ulm_folder() -> Path:
    """The folder of the shipped ULM model files (inside the installed package)."""
    return Path(str(resources.files("blockrecon.ulm")))


def pretrained_ulm_path(spatial_dims: int) -> Path:
    """Path of the shipped network for data of ``spatial_dims`` (2 or 3) spatial axes.

    Raises:
        ValueError: ``spatial_dims`` is not 2 or 3.
        FileNotFoundError: the file is not installed (naming the script that produces it).
    """
    if spatial_dims not in PRETRAINED_FILES:
        raise ValueError(
            f"shipped ULM networks exist for 2D and 3D data, not {spatial_dims!r} spatial axes"
        )
    path = pretrained_ulm_folder() / PRETRAINED_FILES[spatial_dims]
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped {spatial_dims}D ULM model {path} is not installed; produce it with "
            f"python {TRAINING_SCRIPT} --dims {spatial_dims}"
        )
    return path


def load_pretrained_ulm(spatial_dims: int, device: Any = None) -> LoadedModel:
    """The shipped network for ``spatial_dims`` (2 or 3) spatial axes, read as any ULM model
    file (:func:`blockrecon.ulm.training.load_model`).

    Args:
        spatial_dims: 2 for IQ data ``(frames, nz, nx)``, 3 for ``(frames, nz, ny, nx)``.
        device: device of the returned network (default the CPU).

    Returns:
        ``(model, config, extra)``: the :class:`~blockrecon.ulm.training.UlmModel` (its decoding
        threshold, split radius and smoothing set), its architecture, and its metadata (``seed``,
        ``settings``, ``train_seconds``, ``held_out`` scores, ...; see the training script).

    Raises:
        ValueError: ``spatial_dims`` is not 2 or 3, or the file is damaged.
        FileNotFoundError: the file is not installed.
    """
    return load_model(pretrained_ulm_path(spatial_dims), device)
