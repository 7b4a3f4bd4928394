"""Smoke test: benchmarks/bench_active_learning.py runs end to end at tiny size and writes its table and plot."""

from __future__ import annotations

import json

import pytest
from _benchmarks import load_benchmark

pytest.importorskip("torch")


def test_benchmark_runs_at_tiny_size(tmp_path, capsys):
    mod = load_benchmark("bench_active_learning")
    rc = mod.main(["--size", "tiny", "--seeds", "0", "--strategies", "random", "entropy-voxel", "--out",
                   str(tmp_path), "--threads", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "| random |" in out and "| entropy-voxel |" in out
    res = json.loads((tmp_path / "results_world_tiny.json").read_text())
    assert set(res["curves"]) == {"random", "entropy-voxel"}
    assert [h["round"] for h in res["curves"]["random"][0]] == [0, 1]
    assert (tmp_path / "curves_world_tiny.png").stat().st_size > 1000
