"""SimGap's Kit tests: ``omni.kit.test.AsyncTestCase`` classes that Kit's test runner discovers in
``simgap_ext.tests`` (``isaac-sim.sh --enable simgap_ext`` + the ``[[test]]`` args of extension.toml, or
``./kit/kit --enable omni.kit.test --/exts/omni.kit.test/testExts/0='simgap_ext'``), and that
``tests/kit/run_kit_tests.py`` runs in the kernel-only Kit where ``omni.kit.test`` is not installable
(:mod:`._base` supplies the base class there)."""

from .test_kit import *  # noqa: F403 - Kit's runner collects the TestCase classes from this package
