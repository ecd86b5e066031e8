"""Atomic file writing: a reader sees either the old file or the complete new one, never a part.

Every writer in blockrecon (HDF5, NIfTI, PNG, checkpoints) writes into a temporary file in the
target's folder and moves it onto the target with ``os.replace`` only once the write has
succeeded. If the write raises (including ``KeyboardInterrupt``), the temporary file is removed
and the target is left exactly as it was: absent, or the previous version.

Three forms::

    with atomic_path("out.h5") as tmp:          # any code that writes to a path
        with h5py.File(tmp, "w") as f: ...

    atomic_write("ckpt.pt", lambda tmp: torch.save(state, tmp))

    with atomic_paths(["map.nii.gz", "mip.png"]) as (nii, png):   # all or none
        ...

The temporary name keeps the target's suffixes (``.vol-1a2b3c4d.partial.nii.gz`` for
``vol.nii.gz``), so libraries that pick the format from the extension (nibabel, matplotlib) write
the right format. It is created empty with the usual permissions (``0o666`` minus the umask) and
the writer may overwrite or reopen it.

A folder that cannot take the file (no permission, read-only file system, no space left) raises
:class:`NotWritableError` naming the target, never the temporary file; :func:`check_writable`
finds that out before any work.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["NotWritableError", "atomic_path", "atomic_paths", "atomic_write", "check_writable"]

_PARTIAL_TAG = ".partial"

#: Errors meaning that a folder cannot take a new file: no permission, read-only file system,
#: no space or quota left.
UNWRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class NotWritableError(OSError):
    """The target cannot be written where it is (see :data:`UNWRITABLE_ERRNOS`)."""


def _not_writable(target: Path, err: OSError) -> NotWritableError:
    """``err`` as a :class:`NotWritableError` whose message names ``target``."""
    return NotWritableError(f"cannot write {target}: {err.strerror or err}")


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")


def _create_temporary(path: Path, named: Path | None = None) -> Path:
    """Create an empty, uniquely named file next to ``path`` and return its path; a folder that
    cannot take it raises :class:`NotWritableError` naming ``named`` (default ``path``)."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)]
    while True:
        candidate = path.with_name(f".{stem}-{secrets.token_hex(4)}{_PARTIAL_TAG}{suffixes}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as err:  # any refusal of the folder: EACCES, EROFS, ENOENT on /proc...
            raise _not_writable(named or path, err) from err
        return candidate


def check_writable(path: str | os.PathLike[str]) -> None:
    """Check, before any work, that a file can be written at ``path`` (its folder exists and
    takes a new file) or, when ``path`` is a folder, in it: a temporary file is created there
    and removed.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist.
        NotWritableError: no new file can be created there (the message names ``path``).
    """
    target = Path(path)
    if target.is_dir():
        _create_temporary(target / "check", named=target).unlink()
        return
    _check_target(target)
    _create_temporary(target).unlink()


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
        NotWritableError: if the folder cannot take the file (also when the body's write to the
            temporary file fails for that reason).
        Whatever the body raises; the temporary file is then removed and ``path`` is untouched.
    """
    with atomic_paths([path], durable=durable) as (temporary,):
        yield temporary


@contextmanager
def atomic_paths(
    paths: Sequence[str | os.PathLike[str]], *, durable: bool = True
) -> Iterator[list[Path]]:
    """Several files written as one output: a temporary path per target, all moved onto their
    targets once the body has succeeded.

    If the body raises, every temporary file is removed and no target is touched, so a command
    writing several files leaves all of them or none. Each move is atomic, the set of moves is
    not: a crash between two moves leaves the first targets new and the others old.

    Args:
        paths: the final files (distinct); each folder must exist.
        durable: as for :func:`atomic_path`.

    Yields:
        one empty temporary ``pathlib.Path`` per target, in order, each next to its target.

    Raises:
        ValueError: a file is named twice.
        The errors of :func:`atomic_path`, naming the target concerned.
    """
    targets = [Path(p) for p in paths]
    if len({t.resolve() for t in targets}) != len(targets):
        raise ValueError(f"the output files must be distinct, got {[str(t) for t in targets]}")
    for target in targets:
        _check_target(target)
    temporaries: list[Path] = []
    try:
        temporaries.extend(_create_temporary(target) for target in targets)
        yield list(temporaries)
        for temporary, target in zip(temporaries, targets, strict=True):
            if durable:
                _fsync(temporary)
            os.replace(temporary, target)
    except BaseException as err:
        for temporary, target in zip(temporaries, targets, strict=False):
            temporary.unlink(missing_ok=True)
            if _about_temporary(err, temporary):
                raise _not_writable(target, err) from err
        raise
    if durable and os.name == "posix":
        for folder in dict.fromkeys(target.parent for target in targets):
            _fsync(folder)


def _about_temporary(err: BaseException, temporary: Path) -> bool:
    """Whether ``err`` says the temporary file (or an unnamed file) could not be written."""
    return (
        isinstance(err, OSError)
        and err.errno in UNWRITABLE_ERRNOS
        and err.filename in (None, str(temporary), temporary)
    )


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, durable: bool = True
) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path`` atomically.

    Same guarantees and errors as :func:`atomic_path`. Returns ``path`` as a ``pathlib.Path``.
    """
    with atomic_path(path, durable=durable) as temporary:
        write(temporary)
    return Path(path)
