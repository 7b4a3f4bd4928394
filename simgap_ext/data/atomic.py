"""Crash-safe file writes: a reader sees either the old file or the complete new one, never a torn one."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import logging
import os
import tempfile
from pathlib import Path

from ..errors import ExportError

__all__ = ["atomic_write_bytes", "os_error_reason", "temp_tag", "current_temp_tag"]

_log = logging.getLogger(__name__)

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such directory",
    errno.EIO: "I/O error",
}


# The owner of a run directory tags every temporary it creates with its run id (".<name>.<tag>.<random>.tmp"), so that
# a clean-up after a crash removes only temporaries it can prove are its own (simgap_ext.pipeline.run_dir).
_TEMP_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("simgap_temp_tag", default="")


@contextlib.contextmanager
def temp_tag(tag: str):  # noqa: ANN201 - a generator context manager
    """Within the ``with`` block (same thread/context), :func:`atomic_write_bytes` names its temporaries
    ``.<name>.<tag>.<random>.tmp``.

    Args:
        tag: letters and digits only (a run id).
    """
    if not tag.isalnum():
        raise ValueError(f"temp tag must be alphanumeric, got {tag!r}")
    token = _TEMP_TAG.set(tag)
    try:
        yield tag
    finally:
        _TEMP_TAG.reset(token)


def current_temp_tag() -> str:
    """The tag set by the innermost :func:`temp_tag` block ("" outside any)."""
    return _TEMP_TAG.get()


def os_error_reason(exc: OSError) -> str:
    """A short lower-case reason for an OSError ("no space left on device"), for messages that also name the path."""
    return _REASONS.get(exc.errno or -1) or (exc.strerror or str(exc) or type(exc).__name__).lower()


def atomic_write_bytes(path: str | Path, data: bytes | bytearray | memoryview, *, make_dirs: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory (same file system, so the rename is atomic), which
    is flushed, fsynced and ``os.replace``-d over ``path``; the directory is then fsynced so that the rename
    survives a power cut.

    Args:
        path: destination file.
        data: the complete new contents.
        make_dirs: create missing parent directories.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: any OSError (full disk, permission denied, read-only file system...), with a message
            naming the reason and ``path``. The temporary file is removed and an existing file at ``path`` is
            left untouched.
    """
    p = Path(path)
    tmp: str | None = None
    try:
        if make_dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
        tag = _TEMP_TAG.get()
        prefix = f".{p.name}.{tag}." if tag else f".{p.name}."
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=p.parent)
        # mkstemp creates 0600; exported data is meant to be read by other users and tools, as open() would allow.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        tmp = None
        _fsync_dir(p.parent)
    except OSError as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"{os_error_reason(exc)} writing {p}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _log.debug("wrote %s (%d bytes)", p, len(data))
    return p


def _umask() -> int:
    # Linux reports the umask in /proc without changing it. os.umask can only be read by setting it, which
    # leaves a short window in which another thread's new files would get the temporary mask.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    # Directory fsync makes the rename durable; not every platform/file system allows opening a directory.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
