"""A guard that turns a hang into a test failure (not a timing assertion), shared by the hostile-input tests."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def fail_after(seconds: int, what: str = "case") -> Iterator[None]:
    """Raise ``TimeoutError`` in the ``with`` block once it has run ``seconds`` (SIGALRM: main thread, POSIX)."""

    def _expired(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"{what} still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
