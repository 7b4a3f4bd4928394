"""One speculative render ahead on a worker thread, so that rendering frame k+1 overlaps gating frame k; and
:func:`open_prefetcher`, which picks a worker process (:mod:`~simgap_ext.pipeline.render_worker`) when it can.

The runner's decisions stay sequential: it asks for the attempt it needs by key ``(seed, focus, frame_id,
attempt)``; a pre-rendered frame is used only when its key is exactly that one (a render is a deterministic
function of the key, which resume already relies on), otherwise it is dropped and the attempt is rendered
again. Manifest rows, files and gate state are therefore those of a sequential run, whatever is predicted.

Bounded: at most one render is in flight or waiting, and the source never renders on two threads at once (a
mismatched or abandoned render is waited for before anything else renders). The worker only renders: it writes
nothing, so killing the process at any moment leaves the run directory as a sequential run would.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["PIPELINE_MODES", "RenderPrefetcher", "open_prefetcher"]

#: ``pipeline`` settings of :func:`open_prefetcher` (``"auto"``: a process where possible, else a thread).
PIPELINE_MODES = ("auto", "process", "thread")

_log = logging.getLogger(__name__)


class RenderPrefetcher:
    """Render the predicted next attempt of a scene source on a single worker thread.

    Args:
        source: the scene source (``render(**kwargs) -> frame dict``); used by the worker only while a
            prefetch is in flight, so the caller must not render on its own meanwhile (use :meth:`take` or
            :meth:`drop` first).

    Attributes:
        hits: prefetched frames that were used.
        misses: prefetched renders that were dropped (another attempt was needed, or the render failed).
        concurrent_safe: False: the caller must not render while a prefetch is in flight (one shared source).
    """

    concurrent_safe = False

    def __init__(self, source: Any) -> None:
        self._source = source
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgap-render")
        self._key: Hashable | None = None
        self._future: Future | None = None
        self.hits = 0
        self.misses = 0

    def submit(self, key: Hashable, *, after_kwargs: dict[str, Any] | None = None, **render_kwargs: Any) -> None:
        """Start rendering ``source.render(**render_kwargs)`` for ``key`` (an unused earlier prefetch is dropped;
        ``after_kwargs`` is for a worker process's ``after_render`` and ignored here)."""
        self.drop()
        self._key = key
        self._future = self._pool.submit(self._source.render, **render_kwargs)

    def take(self, key: Hashable) -> dict[str, Any] | None:
        """The prefetched frame for ``key``, waiting for it if needed; ``None`` when nothing matching was
        prefetched or its render failed (the caller renders itself, which raises the error in its own thread)."""
        future, pending = self._future, self._key
        self._future = self._key = None
        if future is None:
            return None
        if pending != key:
            _wait_quietly(future)
            self.misses += 1
            return None
        try:
            frame = future.result()
        except Exception as exc:  # noqa: BLE001 - re-raised by the caller's own render of the same key
            _log.debug("prefetched render of %r failed (%s); rendering again in the caller", key, exc)
            self.misses += 1
            return None
        self.hits += 1
        return frame

    def drop(self) -> None:
        """Wait for and discard any prefetch in flight (the source is free for the caller afterwards)."""
        if self._future is not None:
            _wait_quietly(self._future)
            self.misses += 1
        self._future = self._key = None

    def close(self) -> None:
        """Drop any prefetch and stop the worker thread."""
        self.drop()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> RenderPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_prefetcher(source: Any, mode: str = "auto", *, after_render: Any = None) -> Any:
    """A prefetcher for ``source``: :class:`~simgap_ext.pipeline.render_worker.ProcessRenderPrefetcher` or
    :class:`RenderPrefetcher` (same ``submit/take/drop/close`` interface).

    Args:
        source: the scene source.
        after_render: for a worker process only: a picklable ``f(frame, **after_kwargs) -> extra`` it runs after
            each render (``after_kwargs`` per ``submit``)
            (its ``take`` then returns ``(frame, extra)``; a thread prefetcher ignores it and returns frames).
        mode: ``"process"`` (a worker process; :class:`RenderWorkerError` when impossible), ``"thread"``, or
            ``"auto"``: a process unless processes are unavailable here (inside Kit), only one CPU is usable, the
            source does not pickle or the worker cannot start; then a thread (the reason is logged).

    Raises:
        SimGapInputError: unknown ``mode``.
        RenderWorkerError: ``mode="process"`` and no worker process could be started.
    """
    from ..errors import SimGapInputError
    from .render_worker import ProcessRenderPrefetcher, RenderWorkerError, processes_available

    if mode not in PIPELINE_MODES:
        raise SimGapInputError(f"unknown pipeline mode {mode!r} (known: {', '.join(PIPELINE_MODES)})")
    if mode == "thread":
        return RenderPrefetcher(source)
    if mode == "auto" and not processes_available():
        _log.info("rendering ahead on a worker thread (no worker processes in this host)")
        return RenderPrefetcher(source)
    if mode == "auto" and _usable_cpus() < 2:
        _log.info("rendering ahead on a worker thread (one usable CPU: a worker process would only add its start-up)")
        return RenderPrefetcher(source)
    try:
        return ProcessRenderPrefetcher(source, after_render=after_render)
    except RenderWorkerError as exc:
        if mode == "process":
            raise
        _log.warning("%s; rendering ahead on a worker thread instead", exc)
        return RenderPrefetcher(source)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _wait_quietly(future: Future) -> None:
    try:
        future.result()
    except Exception:  # noqa: BLE001, S110 - an unused speculative render's failure is irrelevant
        pass
