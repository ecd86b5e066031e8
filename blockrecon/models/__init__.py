"""Unrolled-network configurations, model files, and the shipped pretrained model.

Main names: :func:`build_unrolled` (architecture from a JSON-able config), :func:`save_model` /
:func:`load_model` (model files), :func:`load_pretrained` (the model shipped with the package).
"""

from blockrecon.models.config import (
    DEFAULT_CONFIG,
    build_unrolled,
    default_config,
    resolve_config,
)
from blockrecon.models.files import FORMAT_VERSION, load_model, save_model
from blockrecon.models.pretrained import load_pretrained, pretrained_path

__all__ = [
    "DEFAULT_CONFIG",
    "FORMAT_VERSION",
    "build_unrolled",
    "default_config",
    "load_model",
    "load_pretrained",
    "pretrained_path",
    "resolve_config",
    "save_model",
]
