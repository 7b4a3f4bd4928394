"""``AsyncTestCase``: ``omni.kit.test``'s when present, else a minimal stand-in with the same shape.

``omni.kit.test.AsyncTestCase`` is a ``unittest.TestCase`` whose ``setUp``/``tearDown`` and ``test_*`` methods are
coroutines awaited on Kit's loop. The stand-in keeps that contract (``unittest.TestCase`` for the ``assert*``
methods) so that ``tests/kit/run_kit_tests.py`` can await the same classes in a kernel-only Kit; :func:`test_cases`
lists them for it in Kit's order (class name, then method name).
"""

from __future__ import annotations

import inspect
import unittest
from collections.abc import Iterator

__all__ = ["AsyncTestCase", "HAS_OMNI_KIT_TEST", "test_cases"]

try:
    from omni.kit.test import AsyncTestCase

    HAS_OMNI_KIT_TEST = True
except ImportError:  # kernel-only Kit, plain Python
    HAS_OMNI_KIT_TEST = False

    class AsyncTestCase(unittest.TestCase):  # type: ignore[no-redef]
        """Stand-in for ``omni.kit.test.AsyncTestCase``: async ``setUp`` / ``tearDown`` / ``test_*``."""

        async def setUp(self) -> None:  # noqa: N802 - unittest's name
            pass

        async def tearDown(self) -> None:  # noqa: N802
            pass


def test_cases(module: object) -> Iterator[AsyncTestCase]:
    """Instances of every ``AsyncTestCase`` subclass in ``module``, one per ``test_*`` coroutine method."""
    classes = sorted(
        (
            c
            for c in vars(module).values()
            if inspect.isclass(c) and issubclass(c, AsyncTestCase) and c is not AsyncTestCase
        ),
        key=lambda c: c.__name__,
    )
    for cls in classes:
        for name in sorted(
            n for n in dir(cls) if n.startswith("test") and inspect.iscoroutinefunction(getattr(cls, n))
        ):
            yield cls(name)


test_cases.__test__ = False  # not a test itself (pytest / Kit collectors)
