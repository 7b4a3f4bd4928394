"""One speculative render ahead in a worker *process*, so that rendering frame k+1 overlaps gating frame k on a
second core (a worker thread cannot: scene sampling and most of the gate are NumPy calls that hold the GIL).

Same contract as :class:`~simgap_ext.pipeline.prefetch.RenderPrefetcher`: the runner asks for the attempt it needs
by key ``(seed, focus, frame_id, attempt)`` and a pre-rendered frame is used only for exactly that key (a render is
a deterministic function of the key), so manifest rows, files and gate state are those of a sequential run.

The worker is a fresh interpreter (``python -c``, not ``fork``: a forked child would share the run directory's lock
and copies of other threads' locks; not ``multiprocessing``'s spawn/forkserver either, which re-run the caller's
main script in the child) talking over a socket pair. It receives a pickled copy of the scene source once, only
renders, writes nothing, ignores SIGINT (the parent decides) and exits when the parent closes the socket or dies.
Since the caller's source and the worker's are distinct objects, the caller may render while a mispredicted render
still runs in the worker (its result is discarded when it arrives), and :meth:`ProcessRenderPrefetcher.take` never
waits for a render the worker has not started (it cancels it and the caller renders itself), so the worker's
start-up or a busy worker costs at most what rendering in order would. At most two requests are outstanding.

Optionally the worker also runs ``after_render(frame, **after_kwargs)`` (a picklable callable, e.g. the gate's
frame statistics, which depend on the frame alone; ``after_kwargs`` per request, e.g. which statistics parts to
leave to the main process) and :meth:`~ProcessRenderPrefetcher.take` returns ``(frame, extra)``, moving that work
off the main process too. Each answer carries the seconds the job took in the worker
(:attr:`~ProcessRenderPrefetcher.last_job_s`), from which the runner balances the two processes.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Hashable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import SimGapError
from .blas_threads import SINGLE_THREAD_ENV

__all__ = ["ProcessRenderPrefetcher", "RenderWorkerError", "processes_available", "serve"]

_log = logging.getLogger(__name__)

#: Seconds ``close`` waits for an idle worker to exit before terminating it.
_JOIN_S = 5.0
#: Requests sent and not yet answered, at most (one dropped render still running + the live one).
_MAX_OUTSTANDING = 2
_PR_SET_PDEATHSIG = 1


class RenderWorkerError(SimGapError, RuntimeError):
    """The render worker process died or could not be started (the run directory is untouched)."""


def processes_available() -> bool:
    """Whether a worker process can be started here: a POSIX Python whose ``sys.executable`` re-runs it, not an
    embedding host such as Omniverse Kit."""
    if "carb" in sys.modules or "omni.kit.app" in sys.modules:
        return False
    return os.name == "posix" and bool(sys.executable) and Path(sys.executable).name.startswith("python")


def serve(fd: int) -> None:
    """The worker's main loop (run in the child as ``python -c``) on the socket ``fd``.

    Parent to worker: ``("source", source_pickle, after_pickle_or_None)`` first, then
    ``("render", id, kwargs, after_kwargs)``, ``("cancel", id)``, or ``None`` to stop. Worker to parent:
    ``("started", id)`` before a render, then ``("done", id, status, payload, seconds)`` with status ``"ok"``
    (payload the frame, or ``(frame, after(frame, **after_kwargs))``), ``"error"`` (payload a traceback text) or
    ``"skipped"`` (cancelled before it started), and the wall seconds the job took in the worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    conn = Connection(fd)
    try:
        first = conn.recv()
        source = pickle.loads(first[1])
        after = pickle.loads(first[2]) if first[2] is not None else None
        queue: collections.deque[tuple[int, dict[str, Any], dict[str, Any]]] = collections.deque()
        cancelled: set[int] = set()
        while True:
            if not queue and not _handle(conn.recv(), queue, cancelled):
                return
            while conn.poll(0):  # a cancel sent after a request must be seen before that request starts
                if not _handle(conn.recv(), queue, cancelled):
                    return
            if not queue:
                continue
            req, kwargs, after_kwargs = queue.popleft()
            if req in cancelled:
                cancelled.discard(req)
                conn.send(("done", req, "skipped", None, 0.0))
                continue
            conn.send(("started", req))
            t0 = time.perf_counter()
            try:
                frame = source.render(**kwargs)
                payload = (frame, after(frame, **after_kwargs)) if after is not None else frame
                result: tuple[Any, ...] = ("done", req, "ok", payload)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which renders again itself
                result = ("done", req, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
            conn.send((*result, time.perf_counter() - t0))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent closed the socket or died: nothing to clean up, the worker writes nothing
    finally:
        conn.close()


def _handle(msg: Any, queue: collections.deque, cancelled: set[int]) -> bool:
    if msg is None:
        return False
    if msg[0] == "render":
        queue.append((msg[1], msg[2], msg[3]))
    elif msg[0] == "cancel":
        cancelled.add(msg[1])
    return True


def _die_with_parent() -> None:
    # Linux: a SIGKILLed parent takes the worker down at once, not only when its render ends and the send fails.
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() == 1:
        raise SystemExit(0)


class ProcessRenderPrefetcher:
    """Render the predicted next attempt of a scene source in one worker process.

    Args:
        source: the scene source (``render(**kwargs) -> frame dict``); must pickle (its copy renders in the worker).
        after_render: optional picklable ``f(frame, **after_kwargs) -> extra`` run in the worker after each render
            (``after_kwargs`` given per :meth:`submit`); :meth:`take` then returns ``(frame, extra)``.

    Raises:
        RenderWorkerError: the source does not pickle or the process cannot be started (callers fall back to a
            thread or to rendering in order).

    Attributes:
        hits: prefetched frames that were used.
        misses: prefetched renders that were dropped (another attempt was needed, the worker had not started it,
            or the render failed).
        concurrent_safe: True: the caller may render on its own source while a prefetch is in flight.
        last_job_s: wall seconds the worker spent on the last frame :meth:`take` returned (render and
            ``after_render``), ``None`` before one.
    """

    concurrent_safe = True

    def __init__(self, source: Any, after_render: Any = None) -> None:
        try:
            payload = pickle.dumps(source, protocol=pickle.HIGHEST_PROTOCOL)
            after = pickle.dumps(after_render, protocol=pickle.HIGHEST_PROTOCOL) if after_render is not None else None
        except Exception as exc:  # noqa: BLE001 - any pickling failure means "no process worker"
            raise RenderWorkerError(f"scene source {type(source).__name__} cannot be sent to a worker: {exc}") from exc
        parent_sock, child_sock = socket.socketpair()
        # The child imports what the parent can (the package, the source's module, e.g. a test's): same sys.path.
        # One BLAS thread: the two processes already fill the cores (see blas_threads).
        env = {**os.environ, **SINGLE_THREAD_ENV, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        code = "import sys; from simgap_ext.pipeline.render_worker import serve; serve(int(sys.argv[1]))"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            parent_sock.close()
            raise RenderWorkerError(f"cannot start the render worker process: {exc}") from exc
        finally:
            child_sock.close()  # only the worker holds its end, so its death reads as EOF here
        self._conn = Connection(parent_sock.detach())
        self._next_id = 0
        self._pending: tuple[Hashable, int] | None = None  # (key, request id) of the live prefetch
        self._outstanding: set[int] = set()  # sent, not answered
        self._started: set[int] = set()
        self._results: dict[int, tuple[str, Any, float]] = {}  # request id -> (status, payload, seconds)
        self.hits = 0
        self.misses = 0
        self.last_job_s: float | None = None
        self._closed = False
        self._send(("source", payload, after))

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

    def submit(self, key: Hashable, *, after_kwargs: dict[str, Any] | None = None, **render_kwargs: Any) -> None:
        """Queue ``source.render(**render_kwargs)`` for ``key`` in the worker, then ``after_render(frame,
        **after_kwargs)`` (an unused earlier prefetch is dropped without waiting for it)."""
        self.drop()
        while len(self._outstanding) >= _MAX_OUTSTANDING:  # bounded: dropped renders cannot pile up
            self._receive()
        req = self._next_id
        self._next_id += 1
        self._send(("render", req, render_kwargs, dict(after_kwargs or {})))
        self._outstanding.add(req)
        self._pending = (key, req)

    def take(self, key: Hashable) -> Any:
        """The prefetched frame for ``key`` (``(frame, extra)`` with ``after_render``), waiting for it if the worker
        has started it; ``None`` when nothing matching was prefetched, the worker had not started it yet (it is
        cancelled: rendering here is no slower) or its render failed in the worker (the caller then renders
        itself, which raises the same error in its own process).

        Raises:
            RenderWorkerError: the worker process died.
        """
        if self._pending is None:
            return None
        pending_key, req = self._pending
        if pending_key != key:
            self.drop()
            return None
        while self._conn.poll(0):
            self._receive()
        if req not in self._started and req not in self._results:
            self.drop()
            return None
        while req not in self._results:
            self._receive()
        self._pending = None
        status, payload, seconds = self._results.pop(req)
        if status != "ok":
            _log.debug("prefetched render of %r failed in the worker (%s); rendering again in the caller", key, payload)
            self.misses += 1
            return None
        self.hits += 1
        self.last_job_s = seconds
        return payload

    def drop(self) -> None:
        """Discard any prefetch in flight: cancelled if the worker has not started it, else finished in the
        background and thrown away."""
        if self._pending is None:
            return
        req = self._pending[1]
        self._pending = None
        self.misses += 1
        self._results.pop(req, None)
        if req in self._outstanding and req not in self._started:
            self._send(("cancel", req))

    def close(self) -> None:
        """Stop the worker: at once when it is still rendering (it writes nothing), else after it read the stop."""
        if self._closed:
            return
        self._closed = True
        self._pending = None
        busy = bool(self._outstanding)
        try:
            if not busy:
                self._conn.send(None)
        except OSError:
            pass
        self._conn.close()
        if busy:
            self._proc.terminate()
        try:
            self._proc.wait(_JOIN_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> ProcessRenderPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ private
    def _send(self, msg: Any) -> None:
        try:
            self._conn.send(msg)
        except OSError as exc:
            raise self._died() from exc

    def _receive(self) -> None:
        """Read one message from the worker (blocking) and book it."""
        try:
            msg = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        if msg[0] == "started":
            self._started.add(msg[1])
            return
        _, req, status, payload, seconds = msg
        self._outstanding.discard(req)
        self._started.discard(req)
        if self._pending is not None and self._pending[1] == req:
            self._results[req] = (status, payload, seconds)

    def _died(self) -> RenderWorkerError:
        try:
            code = self._proc.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        how = "is still running but closed its socket" if code is None else f"exited with code {code}"
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed by signal {-code}"
        return RenderWorkerError(
            f"the render worker process (pid {self._proc.pid}) {how}; nothing was written for the frame it was "
            "rendering. Resume the run with --resume, or add --no-pipeline to render in the main process"
        )
