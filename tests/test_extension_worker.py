"""GateWorker: the writer's gate/export thread keeps order, bounds its queue and hands errors back."""

from __future__ import annotations

import threading

import pytest

from simgap_ext.replicator.worker import GateWorker


def test_items_run_in_order_on_one_background_thread():
    seen: list[tuple[int, int]] = []
    worker = GateWorker(lambda i: seen.append((i, threading.get_ident())), maxsize=2)
    for i in range(20):
        worker.submit(i)
    worker.wait()
    assert [i for i, _ in seen] == list(range(20))
    threads = {t for _, t in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads
    worker.close()
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(0)


def test_submit_blocks_when_the_queue_is_full():
    gate = threading.Event()
    worker = GateWorker(lambda i: gate.wait(5), maxsize=1)
    worker.submit(0)  # running (blocked in fn)
    worker.submit(1)  # queued: the queue is full now
    done = threading.Event()
    t = threading.Thread(target=lambda: (worker.submit(2), done.set()))
    t.start()
    assert not done.wait(0.2)  # the third submit waits for room
    gate.set()
    assert done.wait(5)
    worker.wait()
    worker.close()


def test_a_worker_error_is_raised_on_the_callers_thread_once():
    def fn(i):
        if i == 1:
            raise OSError("disk full")

    worker = GateWorker(fn)
    worker.submit(0)
    worker.submit(1)
    with pytest.raises(OSError, match="disk full"):
        worker.wait()
    worker.submit(2)
    worker.wait()  # reported once; the worker keeps going
    worker.close()
    with pytest.raises(ValueError, match="maxsize"):
        GateWorker(fn, maxsize=0)
