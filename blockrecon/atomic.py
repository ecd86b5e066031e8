"""Atomic file writing: a reader sees either the old file or the complete new one, never a part.

Every writer in blockrecon (HDF5, NIfTI, PNG, checkpoints) writes into a temporary file in the
target's folder and moves it onto the target with ``os.replace`` only once the write has
succeeded. If the write raises (including ``KeyboardInterrupt``), the temporary file is removed
and the target is left exactly as it was: absent, or the previous version.

Two forms::

    with atomic_path("out.h5") as tmp:          # any code that writes to a path
        with h5py.File(tmp, "w") as f: ...

    atomic_write("ckpt.pt", lambda tmp: torch.save(state, tmp))

The temporary name keeps the target's suffixes (``.vol-1a2b3c4d.partial.nii.gz`` for
``vol.nii.gz``), so libraries that pick the format from the extension (nibabel, matplotlib) write
the right format. It is created empty with the usual permissions (``0o666`` minus the umask) and
the writer may overwrite or reopen it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]

_PARTIAL_TAG = ".partial"


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")


def _create_temporary(path: Path) -> Path:
    """Create an empty, uniquely named file next to ``path`` and return its path."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)]
    while True:
        candidate = path.with_name(f".{stem}-{secrets.token_hex(4)}{_PARTIAL_TAG}{suffixes}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (POSIX), to the storage device."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write to; on success move it onto ``path``.

    Args:
        path: the final file. Its folder must exist; an existing file is replaced.
        durable: flush the new file and the folder entry to disk (fsync) before returning, so
            that the new file survives a power cut. ``False`` is faster for scratch files.

    Yields:
        ``pathlib.Path`` of an empty temporary file in the same folder as ``path``.

    Raises:
        FileNotFoundError: if the folder of ``path`` does not exist.
        IsADirectoryError: if ``path`` is a directory.
        Whatever the body raises; the temporary file is then removed and ``path`` is untouched.
    """
    target = Path(path)
    _check_target(target)
    temporary = _create_temporary(target)
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable and os.name == "posix":
        _fsync(target.parent)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, durable: bool = True
) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path`` atomically.

    Same guarantees and errors as :func:`atomic_path`. Returns ``path`` as a ``pathlib.Path``.
    """
    with atomic_path(path, durable=durable) as temporary:
        write(temporary)
    return Path(path)
