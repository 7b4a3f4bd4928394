"""SimGap's Kit tests inside a real (headless, kernel-only) Kit. Run by Kit with ``--exec``; see docs/kit.md.

The tests are the ``AsyncTestCase`` classes of ``simgap_ext.tests`` -- the same ones Isaac Sim's ``omni.kit.test``
runner finds through extension.toml's ``[[test]]``. ``omni.kit.test`` is not installable on the project's machines,
so this runner plays its part: it awaits each case's ``setUp`` / test / ``tearDown`` on Kit's asyncio loop
(``simgap_ext.tests._base.AsyncTestCase`` stands in for ``omni.kit.test.AsyncTestCase``), prints one
``SIMGAP-KIT-TEST: PASS|FAIL <Class.method>`` line per test and the sentinel
``SIMGAP-KIT-TESTS: <n> passed, <m> failed, <k> skipped``, then quits Kit with exit code 0 (all passed) or 1. The
pytest wrapper (tests/test_kit_headless.py) fails unless it sees the sentinel: an experience without a run loop exits
0 having run nothing.

Arguments (after the script path inside ``--exec "..."``): ``--timeout S`` per test (others are ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import traceback
import unittest

import omni.kit.app

SENTINEL = "SIMGAP-KIT-TESTS"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="run_kit_tests.py")
    p.add_argument("--timeout", type=float, default=300.0)
    ns, _unknown = p.parse_known_args(sys.argv[1:])
    return ns


ARGS = _args()


def _load_cases() -> list:
    """The Kit test classes of ``simgap_ext.tests`` (the ones Isaac Sim's omni.kit.test runs), as instances."""
    import simgap_ext.tests as kit_tests
    from simgap_ext.tests._base import test_cases

    return list(test_cases(kit_tests))


async def _run_case(case) -> None:
    await case.setUp()
    try:
        await getattr(case, case._testMethodName)()
    finally:
        await case.tearDown()


async def _main() -> None:
    app = omni.kit.app.get_app()
    passed = failed = skipped = 0
    try:
        for _ in range(2):  # let every extension finish its startup
            await app.next_update_async()
        cases = _load_cases()
        for case in cases:
            name = f"{type(case).__name__}.{case._testMethodName}"
            try:
                await asyncio.wait_for(_run_case(case), timeout=ARGS.timeout)
            except unittest.SkipTest as why:
                skipped += 1
                print(f"SIMGAP-KIT-TEST: SKIP {name}: {why}", flush=True)
            except Exception:  # noqa: BLE001 - a test failure is reported, never raised into Kit
                failed += 1
                print(f"SIMGAP-KIT-TEST: FAIL {name}\n{traceback.format_exc()}", flush=True)
            else:
                passed += 1
                print(f"SIMGAP-KIT-TEST: PASS {name}", flush=True)
    except Exception:  # noqa: BLE001 - e.g. simgap_ext.tests failed to import
        failed += 1
        print(f"SIMGAP-KIT-TEST: FAIL loading simgap_ext.tests\n{traceback.format_exc()}", flush=True)
    finally:
        print(f"{SENTINEL}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
        app.post_quit(0 if failed == 0 and passed else 1)


asyncio.ensure_future(_main())
