"""Smoke test: benchmarks/bench_active_learning.py runs end to end at tiny size and writes its table and plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")


def test_benchmark_runs_at_tiny_size(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_active_learning.py"
    spec = importlib.util.spec_from_file_location("bench_active_learning", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(["--size", "tiny", "--seeds", "0", "--strategies", "random", "entropy-voxel", "--out",
                   str(tmp_path), "--threads", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "| random |" in out and "| entropy-voxel |" in out
    res = json.loads((tmp_path / "results_world_tiny.json").read_text())
    assert set(res["curves"]) == {"random", "entropy-voxel"}
    assert [h["round"] for h in res["curves"]["random"][0]] == [0, 1]
    assert (tmp_path / "curves_world_tiny.png").stat().st_size > 1000
