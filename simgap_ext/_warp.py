"""Warp initialisation and device resolution shared by every kernel launcher.

Kept in one place so that every launcher picks devices the same way: ``None`` means CUDA when Warp sees a
GPU, else the CPU; an explicit name is checked against the devices Warp reports.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

__all__ = ["get_warp", "resolve_device", "available_devices"]

_lock = threading.Lock()
_initialised = False


def get_warp():
    """Import and initialise Warp once, quietly, and return the module."""
    global _initialised
    import warp as wp

    if not _initialised:
        with _lock:
            if not _initialised:
                # Kernel-compile chatter is noise for CLI users; SIMGAP_WARP_VERBOSE=1 restores it.
                quiet = os.environ.get("SIMGAP_WARP_VERBOSE", "0") != "1"
                # Warp <= 1.9 (as bundled with Isaac Sim 5) has config.quiet; newer Warp has config.log_level.
                if hasattr(wp.config, "log_level") and hasattr(wp, "LOG_WARNING"):
                    if quiet:
                        wp.config.log_level = wp.LOG_WARNING
                else:
                    wp.config.quiet = quiet
                if quiet:
                    with _native_stderr_filtered(_NO_DRIVER_NOTICE):
                        wp.init()
                else:
                    wp.init()
                _initialised = True
    return wp


# Printed by Warp's native library on every CPU-only machine; it says nothing a CPU user can act on.
_NO_DRIVER_NOTICE = "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"


@contextlib.contextmanager
def _native_stderr_filtered(drop_prefix: str):
    """Capture file descriptor 2 (C-level stderr) and re-emit every line except those starting with a prefix."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (e.g. Kit's redirected streams): leave as is
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(True) if not ln.startswith(drop_prefix)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def available_devices() -> list[str]:
    """Names of the Warp devices on this machine, CPU first, e.g. ``["cpu", "cuda:0"]``."""
    wp = get_warp()
    return [str(d) for d in wp.get_devices()]


def resolve_device(device: str | None = None) -> str:
    """Return the Warp device to launch on.

    Args:
        device: ``None`` or ``"auto"`` for CUDA when available else CPU; otherwise a Warp device name
            such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``.

    Raises:
        ValueError: if the named device does not exist here.
    """
    wp = get_warp()
    if device is None or device == "auto":
        return "cuda:0" if wp.is_cuda_available() else "cpu"
    name = str(device)
    if name == "cuda":
        name = "cuda:0"
    if name not in available_devices():
        raise ValueError(f"Warp device {device!r} is not available here (have: {', '.join(available_devices())})")
    return name
