"""The NN-distance histogram of ``PairedScorer`` and the ``simgap score --html`` page (``metrics.score_report``)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from scipy.spatial import cKDTree

from simgap_ext.errors import SimGapInputError
from simgap_ext.frame import make_frame
from simgap_ext.metrics.paired import DistanceHistogram, PairedScorer
from simgap_ext.metrics.score_report import render_score_html, write_score_html

LABELS = {40: "ground", 30: "pedestrian"}


def _frame(points, sem=None, inst=None):
    pts = np.asarray(points, np.float32)
    n = len(pts)
    sem = np.full(n, 40, np.uint32) if sem is None else np.asarray(sem, np.uint32)
    inst = np.zeros(n, np.uint32) if inst is None else np.asarray(inst, np.uint32)
    return make_frame(pts, sem, inst, LABELS)


def test_histogram_hand_checked_tiny_pair():
    # d_max = 1 m, 20 bins per decade from 1e-4 m to 100 m: edge j is 10**((j - 80) / 20), count index i >= 1 is
    # the bin [edge i-1, edge i), index 0 is below 1e-4 m, index 121 at or beyond 100 m.
    real = [(0, 0, 0), (3, 0, 0), (0, 0, 6), (3, 1, 0)]
    synth = [(0, 0, 0.03), (3, 0, 0)]
    scorer = PairedScorer(d_max=1.0)
    fs = scorer.add("a", _frame(real), "a", _frame(synth))
    h = scorer.distances
    assert len(h.edges) == 121 and h.edges[80] == 1.0 and h.synthetic_to_real.shape == (122,)
    # real -> synthetic: 0.03 (10**-1.55 <= 0.03 < 10**-1.5: index 50), 0 (index 0), 5.97 (10**0.75 <= 5.97 <
    # 10**0.8: index 96) and exactly 1.0 = d_max (the bin that starts at d_max: index 81)
    want_r2s = np.zeros(122, np.int64)
    want_r2s[[0, 50, 81, 96]] = 1
    np.testing.assert_array_equal(h.real_to_synthetic, want_r2s)
    # synthetic -> real: 0.03 and 0
    want_s2r = np.zeros(122, np.int64)
    want_s2r[[0, 50]] = 1
    np.testing.assert_array_equal(h.synthetic_to_real, want_s2r)
    assert h.total("real_to_synthetic") == 4 and h.total("synthetic_to_real") == 2
    assert h.fraction_beyond_d_max("real_to_synthetic") == 0.5  # 5.97 and the tie at d_max
    assert h.fraction_beyond_d_max("synthetic_to_real") == 0.0
    assert h.mean("real_to_synthetic") == pytest.approx((0.03 + 0 + 5.97 + 1.0) / 4, rel=1e-6)
    # the histogram comes from the very search that gave the scene Chamfer
    assert fs.chamfer == pytest.approx(0.5 * (h.mean("real_to_synthetic") + h.mean("synthetic_to_real")), rel=1e-12)


def test_histogram_pooled_over_pairs_matches_scipy():
    rng = np.random.default_rng(5)
    d_max = 0.1
    scorer = PairedScorer(d_max=d_max)
    pooled_s2r, pooled_r2s = [], []
    for i, (n, m) in enumerate(((300, 220), (150, 410))):
        real = rng.normal(0, 2.0, (n, 3)).astype(np.float32)
        synth = (real[rng.integers(0, n, m)] + rng.normal(0, 0.05, (m, 3))).astype(np.float32)
        synth[:5] = real[:5]  # exact twins: distance 0, below the first edge
        synth[-3:] += 200.0  # far phantom points: beyond the last edge (100 * d_max)
        scorer.add(f"r{i}", _frame(real), f"s{i}", _frame(synth))
        r64, s64 = real.astype(np.float64), synth.astype(np.float64)
        pooled_s2r.append(cKDTree(r64).query(s64)[0])
        pooled_r2s.append(cKDTree(s64).query(r64)[0])
    h = scorer.report().distances
    for direction, ref in (("synthetic_to_real", pooled_s2r), ("real_to_synthetic", pooled_r2s)):
        d = np.concatenate(ref)
        counts = getattr(h, direction)
        assert counts.sum() == len(d) == h.total(direction)
        assert counts[0] == np.count_nonzero(d < h.edges[0]) and counts[-1] == np.count_nonzero(d >= h.edges[-1])
        np.testing.assert_array_equal(counts[1:-1], np.histogram(d, bins=h.edges)[0])
        assert h.mean(direction) == pytest.approx(d.mean(), rel=1e-9)
        assert h.fraction_beyond_d_max(direction) == pytest.approx(np.mean(d >= d_max))
    assert h.synthetic_to_real[0] >= 10 and h.synthetic_to_real[-1] == 6


def test_report_histogram_is_a_snapshot_and_json_safe():
    scorer = PairedScorer(d_max=1.0)
    f = _frame([(0, 0, 0), (1, 0, 0)])
    scorer.add("a", f, "a", f)
    rep = scorer.report()
    scorer.add("b", f, "b", f)
    assert rep.distances.total("real_to_synthetic") == 2 and scorer.distances.total("real_to_synthetic") == 4
    data = json.loads(json.dumps(rep.to_dict()))
    dist = data["distances"]
    assert dist["d_max"] == 1.0 and len(dist["edges"]) == 121
    assert sum(dist["real_to_synthetic"]["counts"]) == dist["real_to_synthetic"]["total"] == 2
    assert dist["synthetic_to_real"]["counts"][0] == 2 and dist["synthetic_to_real"]["mean"] == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_max": 0.0}, "d_max must be a finite number > 0"),
        ({"d_max": float("nan")}, "d_max must be a finite number > 0"),
        ({"d_max": 1.0, "bins_per_decade": 0}, "bins_per_decade must be >= 1"),
    ],
)
def test_histogram_rejects_bad_settings(kwargs, match):
    with pytest.raises(SimGapInputError, match=match):
        DistanceHistogram(**kwargs)


def test_histogram_rejects_bad_distances():
    h = DistanceHistogram(1.0)
    with pytest.raises(SimGapInputError, match="synthetic_to_real has negative or non-finite"):
        h.add(np.array([0.1, -1.0]), np.array([0.1]))
    with pytest.raises(SimGapInputError, match="real_to_synthetic must be 1-D"):
        h.add(np.array([0.1]), np.zeros((2, 2)))
    with pytest.raises(SimGapInputError, match="direction must be"):
        h.total("both")


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<img alt="([a-z_]+)" id="[a-z_]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return {name: base64.b64decode(data) for name, data in found}


def _two_class_report():
    rng = np.random.default_rng(2)
    scorer = PairedScorer(d_max=0.5, min_points=4)
    for i in range(2):
        ground = np.c_[rng.uniform(-5, 5, (80, 2)), np.zeros(80)]
        ped = rng.normal(0, 0.2, (30, 3)) + [2, 0, 1]
        pts = np.vstack([ground, ped])
        sem = np.r_[np.full(80, 40), np.full(30, 30)]
        inst = np.r_[np.zeros(80), np.ones(30)]
        noisy = pts + rng.normal(0, 0.1 * (i + 1), pts.shape)
        scorer.add(f"{i:06d}", _frame(pts, sem, inst), f"{i:06d}", _frame(noisy, sem, inst))
    return scorer.report(warnings=["a <warning> with markup"])


def test_page_is_self_contained_and_shows_the_report(tmp_path):
    rep = _two_class_report()
    path = write_score_html(rep, tmp_path / "sub" / "score.html", sources={"real": "r & d"})
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page, flags=re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    images = _images(page)
    assert list(images) == ["scene_g", "class_scores", "nn_distances"]
    for png in images.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    # escaped text, never raw markup from scan names, warnings or sources
    assert "a &lt;warning&gt; with markup" in page and "r &amp; d" in page
    body = page.split('<table id="per-class">', 1)[1].split("</table>", 1)[0]
    rows = {
        cells[0]: cells[1:] for cells in (re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in body.split("<tr>")) if cells
    }
    assert set(rows) == {"ground", "pedestrian"}
    for name, c in rep.classes.items():
        assert rows[name][:3] == [str(c.n_frames), f"{c.g_mean:.3f}", f"{c.g_min:.3f}"]
    scenes = page.split('<table id="scenes">', 1)[1].split("</table>", 1)[0]
    assert [f"{f.g:.3f}" for f in rep.frames] == re.findall(r'<td class="(?:pass|fail)">([0-9.]+)</td>', scenes)


def test_page_of_an_empty_report():
    rep = PairedScorer(d_max=1.0).report()
    page = render_score_html(rep)
    assert len(_images(page)) == 3 and "0 pairs" in page
