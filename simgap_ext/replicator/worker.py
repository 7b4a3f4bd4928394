"""``GateWorker``: runs the gate and the export of writer frames on one background thread, off Kit's main thread.

Replicator calls ``Writer.write`` on Kit's main thread, where every millisecond is a millisecond of rendering lost;
Isaac Sim's own writers hand their file output to ``self.backend.schedule(...)`` for that reason
(``isaacsim.replicator.writers/python/scripts/writers/pose_writer.py`` at IsaacSim ``v5.1.0``). Scoring a frame
(nearest-neighbour search, histograms) costs more than writing it, so both go to one worker thread here, in
submission order (the manifest and the export indices stay in capture order). The queue is bounded: when the gate
falls behind, ``submit`` blocks the main thread instead of holding an unbounded number of point clouds in memory.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["GateWorker"]

_log = logging.getLogger(__name__)
_STOP = object()


class GateWorker:
    """One daemon thread that runs ``fn(item)`` for every submitted item, in order.

    Args:
        fn: the work (``GatedExportSink.submit``); its return value is passed to ``on_done`` if given.
        maxsize: most items waiting (``submit`` blocks beyond that).
        name: thread name (shows in stack dumps).
    """

    def __init__(self, fn: Callable[[Any], Any], *, maxsize: int = 4, name: str = "simgap-gate") -> None:
        if maxsize < 1:
            raise ValueError(f"GateWorker maxsize must be >= 1, got {maxsize}")
        self._fn = fn
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                work, on_done = item
                result = self._fn(work)
                if on_done is not None:
                    on_done(result)
            except BaseException as exc:  # kept and re-raised on the caller's thread by raise_pending()
                _log.exception("SimGap gate worker failed")
                if self._error is None:
                    self._error = exc
            finally:
                self._queue.task_done()

    def raise_pending(self) -> None:
        """Re-raise (once) an exception the worker hit, on the calling thread."""
        err, self._error = self._error, None
        if err is not None:
            raise err

    def submit(self, item: Any, on_done: Callable[[Any], None] | None = None) -> None:
        """Queue ``item`` (blocks while the queue is full); raises a pending worker error first."""
        if not self._thread.is_alive():
            raise RuntimeError("SimGap gate worker is closed")
        self.raise_pending()
        self._queue.put((item, on_done))

    def wait(self) -> None:
        """Block until every queued item is done, then re-raise a worker error if there was one."""
        self._queue.join()
        self.raise_pending()

    @property
    def pending(self) -> int:
        """Items queued or running (approximate, for the panel)."""
        return self._queue.unfinished_tasks

    def close(self) -> None:
        """Finish the queued items and stop the thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
