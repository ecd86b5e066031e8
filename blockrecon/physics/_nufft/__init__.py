"""Private NUFFT backends behind :class:`blockrecon.physics.nufft.NUFFT`.

``make_backend(name, device, image_shape, eps)`` resolves ``"auto"`` to the fastest installed
backend for the device (FINUFFT on CPU, else SigPy; cuFINUFFT on CUDA, else SigPy on CuPy).
``"dft"``, the exact transform, runs on every device but is never chosen by ``"auto"``.
"""

from __future__ import annotations

import torch

from blockrecon.backend import has_cufinufft, has_cupy, has_finufft

from .base import NufftBackend
from .dft_backend import DftBackend
from .finufft_backend import CufinufftBackend, FinufftBackend
from .sigpy_backend import SigpyBackend

BACKEND_NAMES = ("auto", "sigpy", "finufft", "cufinufft", "dft")

_CLASSES = {
    "sigpy": SigpyBackend,
    "finufft": FinufftBackend,
    "cufinufft": CufinufftBackend,
    "dft": DftBackend,
}


def available_backends(device_type: str) -> tuple[str, ...]:
    """Installed fast backend names usable on ``"cpu"`` or ``"cuda"`` tensors, fastest first
    (the exact ``"dft"`` is not listed: it is usable everywhere but only on request)."""
    if device_type == "cpu":
        return ("finufft", "sigpy") if has_finufft() else ("sigpy",)
    if device_type == "cuda":
        names = ("cufinufft",) if has_cufinufft() else ()
        return names + ("sigpy",) if has_cupy() else names
    return ()


def check_backend_name(name: str) -> str:
    """Raise ValueError for an unknown backend name or one not installed on any device."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {BACKEND_NAMES}, got {name!r}")
    installed = {"dft"} | set(available_backends("cpu")) | set(available_backends("cuda"))
    if name != "auto" and name not in installed:
        raise ValueError(
            f"NUFFT backend {name!r} is not installed (installed: {sorted(installed)})"
        )
    return name


def resolve_backend(name: str, device: torch.device | str) -> str:
    """The backend that ``name`` means for tensors on ``device`` (``"auto"``: the fastest
    installed there). Raises ValueError for an unknown name or one that cannot run there."""
    check_backend_name(name)
    if name == "dft":
        return name
    device = torch.device(device)
    usable = available_backends(device.type)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device}: CUDA is not available on this machine")
    if not usable:
        raise ValueError(
            f"no NUFFT backend for device {device}; for CUDA install cupy (pip install -e '.[gpu]')"
        )
    if name == "auto":
        return usable[0]
    if name not in usable:
        raise ValueError(
            f"NUFFT backend {name!r} cannot run on device {device} (usable there: {usable})"
        )
    return name


def make_backend(
    name: str, device: torch.device, image_shape: tuple[int, ...], eps: float | None
) -> NufftBackend:
    """Instantiate backend ``name`` (or the fastest for ``device`` when ``"auto"``)."""
    return _CLASSES[resolve_backend(name, device)](image_shape, eps)


__all__ = [
    "BACKEND_NAMES",
    "NufftBackend",
    "available_backends",
    "check_backend_name",
    "make_backend",
    "resolve_backend",
]
