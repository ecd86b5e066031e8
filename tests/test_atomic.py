"""Atomic writing: complete file or nothing (old file kept), temp files never left behind."""

import errno
import os
from pathlib import Path

import pytest

from blockrecon.atomic import NotWritableError, check_writable
from blockrecon.io import atomic_path, atomic_write


def test_success_replaces_target_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary != target
        assert temporary.exists()
        temporary.write_bytes(b"new content")
        assert target.read_bytes() == b"old"  # not visible before the block ends
    assert target.read_bytes() == b"new content"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_permissions_follow_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.txt", lambda p: p.write_text("x"))
    finally:
        os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("error", [RuntimeError("write failed"), KeyboardInterrupt()])
def test_failure_leaves_no_file(tmp_path, error):
    target = tmp_path / "out.h5"
    with pytest.raises(type(error)):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise error
    assert os.listdir(tmp_path) == []


def test_failure_keeps_the_previous_file(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous")

    def write(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, write)
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_temporary_keeps_all_suffixes(tmp_path):
    with atomic_path(tmp_path / "volume.nii.gz", durable=False) as temporary:
        assert temporary.name.endswith(".partial.nii.gz")
        assert temporary.name.startswith(".volume-")


def test_missing_folder_and_directory_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write(tmp_path / "no_such_folder" / "f.h5", lambda p: None)
    with pytest.raises(IsADirectoryError, match="directory"):
        atomic_write(tmp_path, lambda p: None)


def test_atomic_write_returns_the_target(tmp_path):
    result = atomic_write(str(tmp_path / "a.txt"), lambda p: p.write_text("hello"))
    assert result == tmp_path / "a.txt" and result.read_text() == "hello"


def test_read_only_folder_is_named_by_its_target_not_the_temporary(read_only_folder):
    target = read_only_folder / "out.h5"
    for attempt in (
        lambda: check_writable(target),
        lambda: atomic_write(target, lambda p: p.write_text("x")),
    ):
        with pytest.raises(NotWritableError, match="cannot write .*out.h5: Read-only") as err:
            attempt()
        assert ".partial" not in str(err.value)
    with pytest.raises(NotWritableError, match=f"cannot write {read_only_folder}: "):
        check_writable(read_only_folder)
    assert os.listdir(read_only_folder) == []


def test_full_disk_while_writing_names_the_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(NotWritableError, match="cannot write .*out.bin: No space") as err:
        with atomic_path(target) as temporary:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary))
    assert ".partial" not in str(err.value) and os.listdir(tmp_path) == []


def test_other_errors_of_the_body_pass_unchanged(tmp_path):
    other = tmp_path / "elsewhere.txt"
    with pytest.raises(PermissionError) as err:
        with atomic_path(tmp_path / "out.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", str(other))
    assert not isinstance(err.value, NotWritableError) and os.listdir(tmp_path) == []


def test_check_writable_leaves_nothing(tmp_path):
    check_writable(tmp_path / "new.nii.gz")
    check_writable(tmp_path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x.h5")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_folder_refusing_files_for_any_reason_is_named_not_the_temporary():
    with pytest.raises(NotWritableError, match=r"^cannot write /proc/x\.nii\.gz: ") as info:
        check_writable("/proc/x.nii.gz")
    assert "partial" not in str(info.value)
