"""ProcessRenderPrefetcher: frames rendered in a worker process are used for their exact key only; renders the
worker has not started are cancelled (the caller renders); a render error is the caller's to raise; a dead worker
is a clear RenderWorkerError; the runner's process path leaves the run directory of a sequential run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from simgap_ext.pipeline.prefetch import open_prefetcher
from simgap_ext.pipeline.render_worker import ProcessRenderPrefetcher, RenderWorkerError, processes_available

pytestmark = pytest.mark.skipif(not processes_available(), reason="no worker processes on this platform")


class SlowSource:
    """A picklable scene source (``render`` interface of SceneSource): sleeps ``delay`` s, answers with its pid."""

    def __init__(self, delay: float = 0.0, fail_seed: int | None = None, die_seed: int | None = None) -> None:
        self.delay = delay
        self.fail_seed = fail_seed
        self.die_seed = die_seed

    def render(self, *, seed: int, **_: object) -> dict:
        if seed == self.die_seed:
            os._exit(3)
        time.sleep(self.delay)
        if seed == self.fail_seed:
            raise RuntimeError(f"render {seed} failed")
        return {"seed": seed, "pid": os.getpid()}


def _double_seed(frame: dict) -> int:
    return 2 * frame["seed"]


def _wait_started(pf: ProcessRenderPrefetcher, timeout: float = 60.0) -> None:
    """Block until the worker reported that it started the live prefetch (its start-up takes seconds)."""
    deadline = time.monotonic() + timeout
    req = pf._pending[1]
    while req not in pf._started and req not in pf._results and time.monotonic() < deadline:
        if pf._conn.poll(0.05):
            pf._receive()
    assert req in pf._started or req in pf._results, "the worker never started the render"


def test_frames_come_from_the_worker_for_their_key_only():
    with ProcessRenderPrefetcher(SlowSource(0.05), after_render=_double_seed) as pf:
        pf.submit(("k", 1), seed=1)
        _wait_started(pf)
        frame, extra = pf.take(("k", 1))
        assert frame["seed"] == 1 and extra == 2
        assert frame["pid"] == pf.pid != os.getpid()
        assert pf.take(("k", 1)) is None  # consumed
        pf.submit(("k", 2), seed=2)
        assert pf.take(("k", 3)) is None  # another attempt came next: dropped
        pf.submit(("k", 4), seed=4)  # queued behind the dropped one; the bound holds
        _wait_started(pf)
        assert pf.take(("k", 4))[0]["seed"] == 4
    assert (pf.hits, pf.misses) == (2, 1)


def test_a_render_the_worker_has_not_started_is_cancelled():
    with ProcessRenderPrefetcher(SlowSource(1.0)) as pf:
        pf.submit("a", seed=1)
        _wait_started(pf)
        pf.submit("b", seed=2)  # queued behind the running render of "a"
        t0 = time.monotonic()
        assert pf.take("b") is None  # not started: the caller renders instead of waiting ~2 s
        assert time.monotonic() - t0 < 0.5
        pf.submit("c", seed=3)  # "b" is skipped in the worker, "c" runs after "a"
        _wait_started(pf)
        assert pf.take("c")["seed"] == 3
    assert (pf.hits, pf.misses) == (1, 2)


def test_a_failed_render_is_left_to_the_caller():
    src = SlowSource(fail_seed=7)
    with ProcessRenderPrefetcher(src) as pf:
        pf.submit("seven", seed=7)
        _wait_started(pf)
        assert pf.take("seven") is None
        with pytest.raises(RuntimeError, match="render 7 failed"):
            src.render(seed=7)  # what the runner does next: the error surfaces in the caller
        assert pf.misses == 1


def test_a_dead_worker_is_a_clear_error():
    pf = ProcessRenderPrefetcher(SlowSource(die_seed=5))
    try:
        pf.submit("five", seed=5)
        with pytest.raises(RenderWorkerError, match=r"worker process \(pid \d+\) exited with code 3.*--no-pipeline"):
            _wait_started(pf)
            pf.take("five")
    finally:
        pf.close()
    pf = ProcessRenderPrefetcher(SlowSource(2.0))
    try:
        pf.submit("one", seed=1)
        _wait_started(pf)
        os.kill(pf.pid, signal.SIGKILL)
        with pytest.raises(RenderWorkerError, match="killed by signal 9 \\(SIGKILL\\)"):
            pf.take("one")
    finally:
        pf.close()


def test_close_stops_a_busy_worker_at_once():
    pf = ProcessRenderPrefetcher(SlowSource(30.0))
    pf.submit("slow", seed=1)
    _wait_started(pf)
    t0 = time.monotonic()
    pf.close()
    assert time.monotonic() - t0 < 5.0
    assert pf._proc.poll() is not None


def test_open_prefetcher_falls_back_to_a_thread_for_a_source_that_does_not_pickle():
    class Local(SlowSource):  # a class defined in a function does not pickle
        pass

    pf = open_prefetcher(Local(), "auto")
    try:
        assert not pf.concurrent_safe
    finally:
        pf.close()
    with pytest.raises(RenderWorkerError, match="cannot be sent to a worker"):
        open_prefetcher(Local(), "process")
    with pytest.raises(ValueError, match="unknown pipeline mode"):
        open_prefetcher(SlowSource(), "fork")
