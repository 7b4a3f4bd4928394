"""The report's bird's-eye views of rejected attempts beside their nearest real frame (simgap_ext/pipeline/bev.py).

A tiny HDL-32 run against the three nuScenes HDL-32E keyframes of tests/data/nuscenes_hdl32 (every attempt of it is
rejected). The nearest real frame is checked against a brute-force argmin of the range Wasserstein-1 over every real
scan (scipy), and the re-rendered frames against the class point counts the run wrote into its manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from simgap_ext.cli import main
from simgap_ext.data import iter_scans
from simgap_ext.errors import SimGapInputError
from simgap_ext.pipeline.bev import bev_views

DATA = Path(__file__).parent / "data" / "nuscenes_hdl32"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bev") / "run"
    gen = ["generate", "--sensor", "hdl-32", "--real", str(DATA), "--frames", "2", "--max-retries", "1"]
    assert main([*gen, "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sum(r["decision"] in ("rejected", "rerandomized", "held_back") for r in rows) >= 2
    return out, rows, json.loads((out / "run.json").read_text())


def _section(page: str) -> str:
    return page.split('<h2 id="bev">', 1)[1].split("<h2>", 1)[0]


def _class_counts(frame: dict) -> dict[str, int]:
    names = {int(k): v["class"] for k, v in frame["info"]["idToLabels"].items()}
    out: dict[str, int] = {}
    for s in np.asarray(frame["info"]["pointSemantic"]).tolist():
        out[names[int(s)]] = out.get(names[int(s)], 0) + 1
    return out


def test_views_are_the_run_frames_beside_the_brute_force_nearest_real_frame(run):
    _, rows, cfg = run
    views = bev_views(rows, cfg, real=DATA, frames=2)
    assert len(views) == 2
    reals = list(iter_scans(DATA, sensor="hdl-32"))
    assert len(reals) == 3
    for v in views:
        assert v.row["decision"] in ("rejected", "rerandomized", "held_back")
        # the same frame the gate saw: the counts the run wrote for this attempt
        got = _class_counts(v.frame)
        assert {k: n for k, n in got.items() if k in v.row["class_points"]} == v.row["class_points"]
        r = np.linalg.norm(np.asarray(v.frame["data"], dtype=np.float64), axis=1)
        d = [wasserstein_distance(r, np.linalg.norm(np.asarray(f["data"], dtype=np.float64), axis=1)) for _, f in reals]
        assert v.real_name == reals[int(np.argmin(d))][0]
        assert v.distance == pytest.approx(min(d), rel=1e-9)
        np.testing.assert_array_equal(v.real_frame["data"], reals[int(np.argmin(d))][1]["data"])
        assert v.image.startswith("data:image/png;base64,")
    # a row whose counts do not match is not silently drawn as if it were that attempt
    bad = [dict(views[0].row, class_points={"ground": 1})]
    with pytest.raises(SimGapInputError, match="differs"):
        bev_views(bad, cfg, real=DATA, frames=1)


def test_report_section_cli(run, tmp_path):
    out, rows, cfg = run
    page_path = tmp_path / "r.html"
    args = ["report", str(out), "--out", str(page_path), "--effect-frames", "0", "--real", str(DATA)]
    assert main([*args, "--bev-frames", "2"]) == 0
    sec = _section(page_path.read_text())
    assert sec.count("<img ") == 2
    views = bev_views(rows, cfg, real=DATA, frames=2)
    captions = re.findall(r"nearest real frame: (\w+) \(range W1 ([\d.]+) m\)", sec)
    assert [c[0] for c in captions] == [v.real_name for v in views]
    assert main([*args, "--bev-frames", "0"]) == 0
    assert 'id="bev"' not in page_path.read_text()
    assert main([*args, "--bev-frames", "-1"]) == 2


def test_without_real_scans_the_synthetic_view_is_drawn_alone(run, tmp_path):
    out, rows, cfg = run
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "manifest.jsonl").write_text((out / "manifest.jsonl").read_text())
    (moved / "run.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "real"}))
    assert main(["report", str(moved), "--effect-frames", "0", "--bev-frames", "1"]) == 0
    sec = _section((moved / "report.html").read_text())
    assert sec.count("<img ") == 1 and "needs real scans" in sec and "--real DIR" in sec
    assert "replicator backend" in bev_views(rows, {**cfg, "backend": "replicator"})
    with pytest.raises(SimGapInputError, match="do not exist"):
        bev_views(rows, cfg, real=tmp_path / "nope")
    with pytest.raises(SimGapInputError, match="radius"):
        bev_views(rows, cfg, radius=0.0)
