"""The ``simgap`` command line.

Each sub-command lives in its own ``cmd_<name>.py`` module exposing ``register(subparsers)``, which adds
the sub-parser and sets ``func`` to a callable taking the parsed ``argparse.Namespace`` and returning an exit
code. Commands are discovered here so that adding one touches no other file.

Exit codes: 0 when the command ran (whatever the scores), 2 with a one-line ``simgap: error: ...`` on bad
input or an I/O failure, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import SimGapError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors read like every other error: one ``simgap: error: ...`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"simgap: error: {message.splitlines()[0] if message else 'invalid arguments'}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every ``cmd_*`` module's sub-command registered."""
    parser = _Parser(
        prog="simgap",
        description="SimGap: measure and gate the sim-to-real gap of synthetic point clouds (DoGSS-PCL).",
    )
    parser.add_argument("--version", action="version", version=f"simgap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simgap`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0): a return code, as documented
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("simgap: interrupted", file=sys.stderr)
        return 130
    except (SimGapError, ValueError, OSError, MemoryError, RecursionError) as exc:
        # MemoryError/RecursionError: the readers bound declared sizes and nesting; these are the safety net for an
        # input that still gets past them, reported like any other bad input instead of a traceback.
        if args.verbose:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, MemoryError | RecursionError):
            msg = f"input too large or nested too deeply ({type(exc).__name__})"
        print(f"simgap: error: {msg[:2000]}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
