"""Architecture of an unrolled network as a JSON-able configuration, and building it.

A configuration is a plain ``dict`` (it goes into JSON files and model files unchanged)::

    {
      "regularizer": {"kind": "resnet3d", "width": 32, "n_layers": 5, "kernel_size": 3},
      "dc": {"kind": "gradient", "step": 1.0, "learnable": True},
      "n_unrolls": 5,
      "share_weights": True,
      "init": "adjoint",
      "patch_size": 32,
      "patch_batch": 1,
      "padding": "reflect",
    }

Regularizer kinds (always valid, unpadded convolutions, so block-wise application is exact):

``resnet3d``
    :class:`blockrecon.nn.ResNet3d` on 2 channels: ``width``, ``n_layers``, ``kernel_size``.
``unet``
    :class:`blockrecon.nn.UNet` (3D, 2 -> 2 channels): ``base_width``, ``depth``.

Data-consistency kinds (:mod:`blockrecon.dc`):

``gradient``
    :class:`~blockrecon.dc.GradientStepDC`: ``step``, ``learnable``.
``cg``
    :class:`~blockrecon.dc.ConjugateGradientDC`: ``lam``, ``n_iter``, ``tol``, ``learnable``,
    ``preconditioner`` (``"none"`` or ``"circulant"``: the same solution in fewer iterations,
    so a different output at a fixed small ``n_iter``; a model keeps the one it was trained
    with), ``backward`` (``"implicit"``: a second CG solve; ``"unrolled"``: autograd through
    the iterations, for one or two preconditioned iterations per unroll).

The normal operator's algorithm (Toeplitz or NUFFT pair) belongs to the operator the network is
called with (:class:`~blockrecon.physics.Sense`), not to the configuration.

Top level: ``n_unrolls``, ``share_weights``, ``init`` (``"zeros"`` or ``"adjoint"``),
``patch_size`` (block-wise core size: an int, a list of 3 ints, or ``None`` for the whole
volume at once), ``patch_batch`` (patches stacked per network call: faster, more memory) and
``padding`` (``"reflect"`` or ``"zeros"``). ``patch_size``, ``patch_batch`` and ``padding`` do
not change the parameters: a trained model may be rebuilt with another patch size.

Missing entries take their defaults (those of the chosen kind for the nested dicts); unknown
keys, unknown kinds and values of the wrong type raise ``ValueError`` naming them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from torch import nn

from blockrecon.dc import ConjugateGradientDC, GradientStepDC
from blockrecon.nn import ResNet3d, UNet
from blockrecon.unrolled import INITS, UnrolledNet

#: Defaults of each regularizer kind.
REGULARIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet3d": {"width": 32, "n_layers": 5, "kernel_size": 3},
    "unet": {"base_width": 8, "depth": 2},
}

#: Defaults of each data-consistency kind.
DC_DEFAULTS: dict[str, dict[str, Any]] = {
    "gradient": {"step": 1.0, "learnable": True},
    "cg": {
        "lam": 0.05,
        "n_iter": 10,
        "tol": 0.0,
        "learnable": True,
        "preconditioner": "none",
        "backward": "implicit",
    },
}

#: The documented default configuration (see the module docstring).
DEFAULT_CONFIG: dict[str, Any] = {
    "regularizer": {"kind": "resnet3d", **REGULARIZER_DEFAULTS["resnet3d"]},
    "dc": {"kind": "gradient", **DC_DEFAULTS["gradient"]},
    "n_unrolls": 5,
    "share_weights": True,
    "init": "adjoint",
    "patch_size": 32,
    "patch_batch": 1,
    "padding": "reflect",
}

PADDINGS = ("reflect", "zeros")


def default_config() -> dict[str, Any]:
    """A fresh copy of :data:`DEFAULT_CONFIG`."""
    return copy.deepcopy(DEFAULT_CONFIG)


def _check_value(where: str, value: Any, default: Any) -> None:
    """``value`` must have the JSON type of ``default`` (bool, int, number or string)."""
    if isinstance(default, str):
        ok = isinstance(value, str)
        expected = "a string"
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
        expected = "a bool"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an int"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        expected = "a number"
    if not ok:
        raise ValueError(f"config {where} must be {expected}, got {value!r}")


def _unknown_keys(where: str, given: Mapping, allowed: Mapping | tuple) -> None:
    unknown = sorted(str(k) for k in given if k not in allowed)
    if unknown:
        raise ValueError(
            f"unknown config keys in {where}: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _resolve_part(
    where: str, given: Any, defaults_by_kind: dict[str, dict[str, Any]], default_kind: str
) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ValueError(f"config {where} must be a dict, got {type(given).__name__}")
    kind = given.get("kind", default_kind)
    if kind not in defaults_by_kind:
        raise ValueError(f"unknown {where} kind {kind!r} (known: {', '.join(defaults_by_kind)})")
    defaults = defaults_by_kind[kind]
    _unknown_keys(f"{where} ({kind})", given, ("kind", *defaults))
    resolved = {"kind": kind}
    for key, default in defaults.items():
        value = given.get(key, default)
        _check_value(f"{where}.{key}", value, default)
        resolved[key] = value
    return resolved


def _check_patch_size(value: Any) -> int | list[int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return list(value)
    raise ValueError(
        f"config patch_size must be None, a positive int or 3 positive ints, got {value!r}"
    )


def resolve_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``config`` and fill in defaults; returns a new, complete, JSON-able dict.

    Raises:
        ValueError: unknown keys or kinds, or a value of the wrong type or range.
    """
    config = {} if config is None else config
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    _unknown_keys("config", config, DEFAULT_CONFIG)
    resolved = {
        "regularizer": _resolve_part(
            "regularizer",
            config.get("regularizer", {}),
            REGULARIZER_DEFAULTS,
            DEFAULT_CONFIG["regularizer"]["kind"],
        ),
        "dc": _resolve_part("dc", config.get("dc", {}), DC_DEFAULTS, DEFAULT_CONFIG["dc"]["kind"]),
    }
    for key in ("n_unrolls", "share_weights", "patch_batch"):
        value = config.get(key, DEFAULT_CONFIG[key])
        _check_value(key, value, DEFAULT_CONFIG[key])
        resolved[key] = value
    for key, choices in (("init", INITS), ("padding", PADDINGS)):
        value = config.get(key, DEFAULT_CONFIG[key])
        if value not in choices:
            raise ValueError(f"config {key} must be one of {choices}, got {value!r}")
        resolved[key] = value
    resolved["patch_size"] = _check_patch_size(
        config.get("patch_size", DEFAULT_CONFIG["patch_size"])
    )
    json.dumps(resolved)  # every accepted value is JSON-able by construction
    return resolved


def build_regularizer(part: Mapping[str, Any]) -> nn.Module:
    """The regularizer network of a resolved ``config["regularizer"]``."""
    settings = {k: v for k, v in part.items() if k != "kind"}
    if part["kind"] == "unet":
        return UNet(dim=3, in_ch=2, out_ch=2, valid=True, **settings)
    return ResNet3d(channels=2, valid=True, **settings)


def build_dc(part: Mapping[str, Any]) -> nn.Module:
    """The data-consistency layer of a resolved ``config["dc"]``."""
    settings = {k: v for k, v in part.items() if k != "kind"}
    if part["kind"] == "cg":
        return ConjugateGradientDC(**settings)
    return GradientStepDC(**settings)


def build_unrolled(config: Mapping[str, Any] | None = None) -> UnrolledNet:
    """An untrained :class:`~blockrecon.unrolled.UnrolledNet` of the architecture ``config``.

    Args:
        config: a (possibly partial) configuration, see the module docstring; ``None`` gives
            :data:`DEFAULT_CONFIG`.

    Raises:
        ValueError: the configuration is invalid (the message names the key or value).
    """
    resolved = resolve_config(config)
    patch_size = resolved["patch_size"]
    return UnrolledNet(
        build_regularizer(resolved["regularizer"]),
        build_dc(resolved["dc"]),
        n_unrolls=resolved["n_unrolls"],
        share_weights=resolved["share_weights"],
        patch_size=tuple(patch_size) if isinstance(patch_size, list) else patch_size,
        patch_batch=resolved["patch_batch"],
        padding=resolved["padding"],
        init=resolved["init"],
    )
