"""One BLAS thread per process while ``simgap generate`` runs pipelined.

NumPy's OpenBLAS starts one thread per core for every matrix product it thinks is large enough: the quarantine's
instance embeddings (:meth:`simgap_ext.metrics.features.FrozenBackbone.embed`, a (K, 64) @ (64, 128) product per
crop) are. In the pipelined run both cores are already busy, the main process with the gate and the worker with
the next render, so the extra thread only competes with the worker and spins while it waits: on os1-128 frames
the main process spent 1.34 CPU-s per frame with OpenBLAS's default against 1.18 with one thread (same bytes
written). A run in order leaves the second core idle and keeps OpenBLAS's default.

OpenBLAS splits a product over its output blocks, never over the inner sum, so every element is computed by the
same kernel in the same order with one thread or several: the values do not change
(``tests/test_generate_fast_paths.py`` compares embeddings bit for bit).

The limit goes through OpenBLAS's own ``*_set_num_threads`` of every OpenBLAS library loaded into the process
(NumPy's and SciPy's wheels each bundle one, with prefixed symbol names); elsewhere (no ``/proc``, another BLAS)
it does nothing. A child process gets ``OPENBLAS_NUM_THREADS`` in its environment instead
(:data:`SINGLE_THREAD_ENV`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["SINGLE_THREAD_ENV", "blas_libraries", "blas_threads", "limit_blas_threads"]

_log = logging.getLogger(__name__)

#: Environment for a child process that should run single-threaded BLAS (read when OpenBLAS loads).
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1"}

# (get, set) symbol pairs, most specific first: scipy-openblas wheels prefix and suffix their symbols.
_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


class _Blas:
    """The thread controls of one loaded OpenBLAS library."""

    def __init__(self, path: str, get: Any, set_: Any) -> None:
        self.path = path
        self._get = get
        self._set = set_
        self._get.restype = ctypes.c_int
        self._get.argtypes = []
        self._set.restype = None
        self._set.argtypes = [ctypes.c_int]

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(int(n))


def _loaded_paths() -> list[str]:
    """Paths of the OpenBLAS shared libraries mapped into this process (Linux ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/") and "openblas" in os.path.basename(p).lower())


def blas_libraries() -> list[_Blas]:
    """The OpenBLAS libraries loaded into this process whose thread count can be set (possibly none)."""
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_NOW", 2)
    found = []
    for path in _loaded_paths():
        try:
            lib = ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and set_ is not None:
                found.append(_Blas(path, get, set_))
                break
    return found


def blas_threads() -> dict[str, int]:
    """Thread count of every loaded OpenBLAS library, by path."""
    return {lib.path: lib.get() for lib in blas_libraries()}


@contextlib.contextmanager
def limit_blas_threads(n: int = 1) -> Iterator[None]:
    """Run the body with at most ``n`` OpenBLAS threads per library, then restore each library's count.

    Args:
        n: thread limit (>= 1).

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"the BLAS thread limit must be >= 1, got {n}")
    saved = []
    for lib in blas_libraries():
        before = lib.get()
        if before > n:
            lib.set(n)
            saved.append((lib, before))
    if not saved:
        _log.debug("no OpenBLAS thread count to limit")
    try:
        yield
    finally:
        for lib, before in saved:
            lib.set(before)
