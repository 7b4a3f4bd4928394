"""``simgap report``: a self-contained HTML page with embedded plots and the manifest's per-class numbers."""

from __future__ import annotations

import base64
import json
import re

import pytest

from simgap_ext.cli import main
from simgap_ext.data.manifest import ManifestWriter, make_row
from simgap_ext.errors import SimGapInputError
from simgap_ext.pipeline.report import write_report


def _rows() -> list[dict]:
    # ped: accepted G 0.9, rerandomized G 0.5, rejected G 0.6 (quarantined, JS 0.3) -> held back, accepted G 0.8.
    spec = [
        ("accepted", {"ped": 0.9, "ground": None}, {"ped": None}, []),
        ("rerandomized", {"ped": 0.5, "wheel": 0.2}, {"ped": 0.1}, []),
        ("rejected", {"ped": 0.6, "wheel": 0.3}, {"ped": 0.3}, ["ped"]),
        ("accepted", {"ped": 0.8, "wheel": 0.95}, {"ped": 0.12, "wheel": 0.05}, []),
    ]
    rows = []
    idx = 0
    for i, (decision, g, js, quarantined) in enumerate(spec):
        exported = decision == "accepted"
        rows.append(
            make_row(
                domain="synthetic",
                sensor="vlp-16",
                decision=decision,
                path=f"velodyne/{idx:06d}.bin" if exported else None,
                label_path=f"labels/{idx:06d}.label" if exported else None,
                index=idx if exported else None,
                seed=i,
                attempt=1 if i == 2 else 0,
                frame_id=min(i, 1) if i < 3 else 2,
                class_points={c: 10 for c in g},
                g=g,
                js=js,
                quarantined=quarantined,
                reasons=[] if exported else [f"class wheel: G={g['wheel']} < 0.75"],
            )
        )
        idx += int(exported)
    return rows


@pytest.fixture()
def run_dir(tmp_path):
    d = tmp_path / "run"
    with ManifestWriter(d / "manifest.jsonl") as w:
        for r in _rows():
            w.append(r)
    (d / "run.json").write_text(json.dumps({"seed": 7, "sensor": "vlp-16"}))
    return d


def _table(html: str) -> dict[str, list[str]]:
    body = html.split('<table id="per-class">', 1)[1].split("</table>", 1)[0]
    out = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<td>(.*?)</td>", tr)
        if cells:
            out[cells[0]] = cells[1:]
    return out


def test_report_contents(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text()
    # self-contained: no external scripts, styles or images
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<script" not in html
    images = re.findall(r'<img alt="([a-z_]+)" id="[a-z_]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [name for name, _ in images] == ["acceptance", "g_distribution", "quarantine_timeline"]
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    table = _table(html)
    # columns: accepted, rejected, re-randomized, held back, acceptance %, mean G, JS, quarantined
    # ped: attempts 4 -> accepted 2, rerandomized 1, held back 1 (quarantined in a final non-accepted attempt)
    assert table["ped"] == ["2", "0", "1", "1", "50.0", f"{(0.9 + 0.5 + 0.6 + 0.8) / 4:.3f}", "0.120", ""]
    assert table["wheel"] == ["1", "1", "1", "0", "33.3", f"{(0.2 + 0.3 + 0.95) / 3:.3f}", "0.050", ""]
    assert table["ground"] == ["1", "0", "0", "0", "100.0", "-", "-", ""]
    assert "Attempts: 4" in html and "&quot;seed&quot;: 7" in html
    reasons = html.split('<table id="reasons">', 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<tr><td>(.*?)</td><td>(\d+)</td><td>(.*?)</td></tr>", reasons) == [
        ("class wheel: G=# &lt; #", "2", "")  # no margin in these reasons
    ]


def test_report_cli_and_custom_out(run_dir, tmp_path, capsys):
    target = tmp_path / "elsewhere" / "r.html"
    assert main(["report", str(run_dir), "--out", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(run_dir / "manifest.jsonl")]) == 0  # a manifest file works too
    assert (run_dir / "report.html").exists()


def test_report_without_manifest(tmp_path, capsys):
    with pytest.raises(SimGapInputError, match="no manifest"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("simgap: error: ")


def test_report_of_empty_run(tmp_path):
    (tmp_path / "manifest.jsonl").write_text("")
    html = write_report(tmp_path).read_text()
    assert html.count("data:image/png;base64,") == 3 and "Attempts: 0" in html
