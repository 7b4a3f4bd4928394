"""benchmarks/vegetation_breakdown.py's per-frame class statistics against a direct reading of a real keyframe, and
bench_foliage.py's interpolation of the foliage mean by hand."""

from __future__ import annotations

import numpy as np
import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def breakdown():
    return load_benchmark("vegetation_breakdown")


def test_class_summary_reads_the_frame_as_labelled(breakdown, keyframes, bank7):
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.frame import id_to_class
    from simgap_ext.gate import FrameGate, load_gate_config
    from simgap_ext.gate.plausibility import VoteIndex

    frame = roll_up_frame(keyframes[-1][1])  # data35: not in the bank
    gate = FrameGate(bank7, load_gate_config(), device="cpu", quarantine=False)
    stats = gate.stats(frame)
    votes = VoteIndex(bank7.desc_vals, bank7.desc_class, bank7.desc_scale()).votes(stats.descriptors)
    names = list(bank7.class_names)
    row = breakdown.class_summary(stats, votes, names, "vegetation")

    # the class's points read straight off the frame's labels
    ids = [i for i, n in id_to_class(frame).items() if n == "vegetation"]
    mask = np.isin(np.asarray(frame["info"]["pointSemantic"]), ids)
    pts = np.asarray(frame["data"], dtype=np.float64)
    assert mask.sum() > 500
    assert row["n"] == mask.sum()
    assert row["share"] == pytest.approx(mask.mean())
    np.testing.assert_allclose(row["height_q"], np.percentile(pts[mask, 2], [10, 50, 90]), atol=1e-4)
    np.testing.assert_allclose(
        row["range_q"], np.percentile(np.linalg.norm(pts[mask], axis=1), [10, 50, 90]), rtol=1e-5
    )
    # votes: the shares of the class's described points' voters, one column per bank class
    mine = mask[stats.desc_index]
    expect = np.array([(votes[mine] == k).mean() for k in range(len(names))])
    np.testing.assert_allclose(row["votes"], expect)
    assert row["votes"].sum() == pytest.approx(1.0)
    assert row["descriptors"].shape == (6,)
    assert 0.0 < row["continuity"] <= 1.0 and row["roughness"] > 0
    # a class the frame does not hold has no row; without votes the row carries none
    assert breakdown.class_summary(stats, votes, names, "wheelchair_user") is None
    assert breakdown.class_summary(stats, None, names, "vegetation")["votes"] is None


def test_scattering_match_interpolates_between_the_bracketing_means():
    mod = load_benchmark("bench_foliage")
    # 0.114 at 0.2 m, 0.139 at 0.3 m: 0.1265 lies half way, at 0.25 m; the grid's order does not matter
    assert mod.scattering_match([0.3, 0.2, 0.4], [0.139, 0.114, 0.157], 0.1265) == pytest.approx(0.25)
    assert mod.scattering_match([0.2, 0.3, 0.4], [0.114, 0.139, 0.157], 0.157) == pytest.approx(0.4)
    assert mod.scattering_match([0.2, 0.3], [0.114, 0.139], 0.20) is None  # not bracketed
