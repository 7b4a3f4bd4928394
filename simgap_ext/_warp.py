"""Warp initialisation and device resolution shared by every kernel launcher.

Kept in one place so that every launcher picks devices the same way: ``None`` means CUDA when Warp sees a
GPU, else the CPU; an explicit name is checked against the devices Warp reports.
"""

from __future__ import annotations

import os
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
                wp.init()
                _initialised = True
    return wp


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
