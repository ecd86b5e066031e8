"""Zero-copy exchange between torch tensors and NumPy/CuPy arrays, and optional-package probes.

CPU tensors become NumPy arrays through ``Tensor.numpy()`` / ``torch.from_numpy`` (shared
memory). CUDA tensors become CuPy arrays through DLPack (``cupy.from_dlpack`` /
``torch.from_dlpack``), also sharing memory. CuPy, FINUFFT and cuFINUFFT are optional: they are
imported only inside functions, and the ``has_*`` probes cache whether they import.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import torch

__all__ = [
    "has_cupy",
    "has_finufft",
    "has_cufinufft",
    "get_array_module",
    "to_array",
    "from_array",
    "array_device",
    "resolve_device",
]


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a broken optional install counts as absent
        return False
    return True


def has_cupy() -> bool:
    """True if CuPy imports and a CUDA device is visible to torch."""
    return torch.cuda.is_available() and _importable("cupy")


def has_finufft() -> bool:
    """True if the CPU NUFFT package ``finufft`` imports."""
    return _importable("finufft")


def has_cufinufft() -> bool:
    """True if CuPy and the GPU NUFFT package ``cufinufft`` are usable."""
    return has_cupy() and _importable("cufinufft")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return a ``torch.device``; ``None`` means CPU. Raises ValueError for unusable devices."""
    if device is None:
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"invalid device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available")
    return device


def get_array_module(tensor: torch.Tensor) -> ModuleType:
    """Return ``numpy`` for CPU tensors and ``cupy`` for CUDA tensors."""
    if tensor.device.type == "cpu":
        return np
    if tensor.device.type == "cuda":
        if not has_cupy():
            raise ValueError("CUDA tensors need CuPy for array computations; install cupy")
        import cupy

        return cupy
    raise ValueError(f"no array module for device type {tensor.device.type!r}")


def to_array(tensor: torch.Tensor):
    """View a tensor as a NumPy (CPU) or CuPy (CUDA) array sharing its memory.

    The tensor is detached and any lazy conjugation is resolved first (that, and only that,
    may copy).
    """
    tensor = tensor.detach().resolve_conj().resolve_neg()
    if tensor.device.type == "cpu":
        return tensor.numpy()
    cupy = get_array_module(tensor)
    return cupy.from_dlpack(tensor)


def from_array(array) -> torch.Tensor:
    """View a NumPy or CuPy array as a torch tensor sharing its memory."""
    if isinstance(array, np.ndarray):
        if any(s < 0 for s in array.strides):
            array = np.ascontiguousarray(array)
        return torch.from_numpy(array)
    if isinstance(array, np.generic):
        return torch.as_tensor(array)
    return torch.from_dlpack(array)


@contextlib.contextmanager
def array_device(tensor: torch.Tensor) -> Iterator[None]:
    """Run CuPy code on the tensor's CUDA device and torch's current stream; no-op on CPU.

    Sharing torch's stream keeps CuPy kernels ordered with the surrounding torch kernels, so no
    synchronisation is needed when arrays cross between the two libraries.
    """
    if tensor.device.type != "cuda":
        yield
        return
    import cupy

    torch_stream = torch.cuda.current_stream(tensor.device)
    with cupy.cuda.Device(tensor.device.index), cupy.cuda.ExternalStream(torch_stream.cuda_stream):
        yield
