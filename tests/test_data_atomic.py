"""atomic_write_bytes: complete writes, failures leave no temp file and the old file intact."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.data import atomic as atomic_mod
from simgap_ext.data import atomic_write_bytes, write_semantickitti_scan
from simgap_ext.errors import ExportError, SimGapError
from simgap_ext.frame import make_frame


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_writes_and_replaces(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "dir" / "f.bin"
    assert atomic_write_bytes(p, b"first") == p
    assert p.read_bytes() == b"first"
    atomic_write_bytes(p, b"second, longer")
    assert p.read_bytes() == b"second, longer"
    assert _listing(p.parent) == ["f.bin"]


@pytest.mark.parametrize("mask", [0o027, 0o077, 0o002])
def test_written_files_follow_the_umask_not_mkstemp_0600(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        p = atomic_write_bytes(tmp_path / "scan.bin", b"x")
        assert atomic_mod._umask() == mask and os.umask(mask) == mask  # read without changing it
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


_REAL_FDOPEN = os.fdopen


class _FullDisk:
    """Stand-in for a file object on a full disk (the OS is the thing being simulated)."""

    def __init__(self, fd: int, mode: str) -> None:
        self._fh = _REAL_FDOPEN(fd, mode)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_enospc_keeps_old_file_and_removes_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "velodyne"
    out.mkdir()
    target = out / "000003.bin"
    target.write_bytes(b"old contents")
    monkeypatch.setattr(atomic_mod.os, "fdopen", _FullDisk)
    with pytest.raises(ExportError, match=r"no space left on device writing .*velodyne/000003\.bin") as info:
        atomic_write_bytes(target, b"new contents")
    assert isinstance(info.value, OSError) and isinstance(info.value, SimGapError)
    assert target.read_bytes() == b"old contents"
    assert _listing(out) == ["000003.bin"]


def test_enospc_at_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Delayed allocation makes a full disk surface at fsync rather than write on many file systems.
    def full_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_mod.os, "fsync", full_fsync)
    with pytest.raises(ExportError, match="no space left on device writing"):
        atomic_write_bytes(tmp_path / "a.label", b"x" * 100)
    assert _listing(tmp_path) == []


def test_eacces_and_erofs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", denied)
    with pytest.raises(ExportError, match=r"permission denied writing .*x\.bin"):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    monkeypatch.undo()

    (tmp_path / "x.bin").write_bytes(b"keep")

    def read_only(src: str, dst: str) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic_mod.os, "replace", read_only)
    with pytest.raises(ExportError, match=r"read-only file system writing .*x\.bin"):
        atomic_write_bytes(tmp_path / "x.bin", b"new")
    assert _listing(tmp_path) == ["x.bin"] and (tmp_path / "x.bin").read_bytes() == b"keep"


def test_real_os_error_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    with pytest.raises(ExportError, match=r"writing .*blocker/out\.bin"):
        atomic_write_bytes(tmp_path / "blocker" / "out.bin", b"data")


def test_scan_export_failure_leaves_no_partial_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_frame(np.ones((4, 3)), np.zeros(4), np.zeros(4), {0: "unlabeled"})
    write_semantickitti_scan(tmp_path, 0, frame)
    before = (tmp_path / "velodyne" / "000000.bin").read_bytes()
    monkeypatch.setattr(atomic_mod.os, "fdopen", _FullDisk)
    with pytest.raises(ExportError, match=r"no space left on device writing .*000001\.label"):
        write_semantickitti_scan(tmp_path, 1, frame)
    with pytest.raises(ExportError):
        write_semantickitti_scan(tmp_path, 0, make_frame(np.zeros((2, 3)), [0, 0], [0, 0], {0: "unlabeled"}))
    assert _listing(tmp_path / "velodyne") == ["000000.bin"]
    assert _listing(tmp_path / "labels") == ["000000.label"]
    assert (tmp_path / "velodyne" / "000000.bin").read_bytes() == before
