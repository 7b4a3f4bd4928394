"""`simgap report` on an active-learning run directory: the learning-curve page (no torch needed)."""

from __future__ import annotations

import json

import pytest

from simgap_ext.cli import main
from simgap_ext.errors import SimGapInputError
from simgap_ext.pipeline.learning_report import read_rounds


def _round(r: int, pts: int, miou: float | None) -> dict:
    ent = {"p50": 0.5, "p90": 0.6, "p95": 0.7 - r / 10, "p99": 0.8}
    return {"round": r, "labelled_scans": r, "labelled_points": pts, "miou": miou, "accuracy": 0.5,
            "iou": {"car": miou, "road": 0.9}, "entropy": ent}  # fmt: skip


def test_report_of_an_active_learning_run_has_one_row_per_round_and_the_curves(tmp_path, capsys):
    rounds = [_round(0, 0, None), _round(1, 1000, 0.25), _round(2, 2500, 0.5)]
    (tmp_path / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))
    (tmp_path / "config.json").write_text(json.dumps({"heuristic": "bald"}))
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    table = page.split('<table id="rounds">')[1].split("</table>")[0]
    assert table.count("<tr><td>") == 3
    assert "<td>2500</td><td>0.500</td><td>0.500</td>" in table  # points, mIoU, p95 entropy
    assert "<td>0</td><td>-</td>" in table  # undefined mIoU
    assert page.count('<img src="data:image/png;base64,') == 2
    assert "&quot;heuristic&quot;: &quot;bald&quot;" in page
    assert read_rounds(tmp_path) == rounds


def test_unreadable_round_log_is_a_clear_error(tmp_path):
    (tmp_path / "rounds.jsonl").write_text("{not json\n")
    with pytest.raises(SimGapInputError, match=r"rounds.jsonl:1: not JSON"):
        read_rounds(tmp_path)
