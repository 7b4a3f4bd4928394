"""The `simgap` entry point: discovery of sub-commands and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simgap_ext.cli import build_parser, main


def test_version_and_help_run() -> None:
    out = subprocess.run([sys.executable, "-m", "simgap_ext.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("simgap ")


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: simgap" in capsys.readouterr().out


def test_every_discovered_command_has_a_handler() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices, "no sub-commands discovered"
    for name, subparser in sub.choices.items():
        assert callable(subparser.get_default("func")), f"'simgap {name}' sets no func"
