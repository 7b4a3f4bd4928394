"""RenderPrefetcher: a prefetched frame is used only for its exact key; mismatches and failures fall back to the
caller's own render; the source never renders on two threads at once."""

from __future__ import annotations

import threading
import time

import pytest

from simgap_ext.pipeline.prefetch import RenderPrefetcher


class _Source:
    """A minimal scene source (the SceneSource ``render`` interface) that records its calls and overlaps."""

    def __init__(self, fail_seed: int | None = None) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.active = 0
        self.max_active = 0
        self.fail_seed = fail_seed
        self._lock = threading.Lock()

    def render(self, *, seed: int, **_: object) -> dict:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(0.01)
            self.calls.append(seed)
            self.threads.add(threading.current_thread().name)
            if seed == self.fail_seed:
                raise RuntimeError(f"render {seed} failed")
            return {"seed": seed}
        finally:
            with self._lock:
                self.active -= 1


def test_prefetched_frame_used_for_its_key_only():
    src = _Source()
    with RenderPrefetcher(src) as pf:
        pf.submit(("k", 1), seed=1)
        assert pf.take(("k", 1)) == {"seed": 1}
        assert pf.take(("k", 1)) is None  # consumed
        pf.submit(("k", 2), seed=2)
        assert pf.take(("k", 3)) is None  # another attempt came next: dropped, after it finished
        assert src.active == 0
        pf.submit(("k", 4), seed=4)
        pf.submit(("k", 5), seed=5)  # replaces the unused one
        assert pf.take(("k", 5)) == {"seed": 5}
    assert (pf.hits, pf.misses) == (2, 2)
    assert src.calls == [1, 2, 4, 5]
    assert src.max_active == 1
    assert all(name.startswith("simgap-render") for name in src.threads)


def test_failed_prefetch_is_rendered_again_by_the_caller():
    src = _Source(fail_seed=7)
    pf = RenderPrefetcher(src)
    pf.submit("seven", seed=7)
    assert pf.take("seven") is None
    with pytest.raises(RuntimeError, match="render 7 failed"):
        src.render(seed=7)  # what the runner does next: the error surfaces in the caller's thread
    pf.close()
    assert pf.misses == 1
