"""Semantic alignment, frozen backbone, instance features, DoGSS scores and d_max calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simgap_ext.errors import ReferenceDataError, SimGapInputError
from simgap_ext.frame import make_frame
from simgap_ext.metrics import (
    FrozenBackbone,
    calibrate,
    calibration_distances,
    combined_score,
    dogss_geometric_score,
    instance_features,
    js_divergence,
    normalized_score,
    semantic_alignment,
)


def _brute_chamfer(a, b):
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return 0.5 * (d.min(1).mean() + d.min(0).mean())


def _brute_chamfer_squared(a, b):
    d2 = ((a[:, None] - b[None]) ** 2).sum(axis=-1)
    return 0.5 * (d2.min(1).mean() + d2.min(0).mean())


# --------------------------------------------------------------------------- semantic alignment


def test_alignment_identical_passes_shifted_fails():
    rng = np.random.default_rng(0)
    real = {"pedestrian": rng.normal(0, 1, (400, 16)), "vehicle": rng.normal(0, 1, (300, 16))}
    same = semantic_alignment(real, dict(real))
    assert same.passed and same.failed_classes == []
    assert same.per_class == {"pedestrian": 0.0, "vehicle": 0.0}
    synth = {"pedestrian": rng.normal(0, 1, (400, 16)), "vehicle": rng.normal(0, 1, (300, 16)) * 3.0 + 2.0}
    res = semantic_alignment(real, synth, method="norm")
    assert res.per_class["pedestrian"] < 0.15 < res.per_class["vehicle"]
    assert res.failed_classes == ["vehicle"] and not res.passed


def test_alignment_norm_histogram_matches_manual_js():
    rng = np.random.default_rng(1)
    r, s = rng.normal(0, 1, (100, 4)), rng.normal(0.2, 1, (80, 4))
    nr, ns = np.linalg.norm(r, axis=1), np.linalg.norm(s, axis=1)
    lo, hi = min(nr.min(), ns.min()), max(nr.max(), ns.max())
    want = js_divergence(np.histogram(nr, 10, (lo, hi))[0], np.histogram(ns, 10, (lo, hi))[0])
    got = semantic_alignment({"c": r}, {"c": s}, method="norm", n_bins=10).per_class["c"]
    assert got == pytest.approx(want, rel=1e-12)


def test_adaptive_bins_small_samples():
    rng = np.random.default_rng(11)
    r, s = rng.normal(0, 1, (6, 4)), rng.normal(0, 1, (9, 4))
    nr, ns = np.linalg.norm(r, axis=1), np.linalg.norm(s, axis=1)
    lo, hi = min(nr.min(), ns.min()), max(nr.max(), ns.max())
    # ceil(sqrt(6)) = 3 bins instead of 50
    want = js_divergence(np.histogram(nr, 3, (lo, hi))[0], np.histogram(ns, 3, (lo, hi))[0])
    got = semantic_alignment({"c": r}, {"c": s}, method="norm", adaptive_bins=True).per_class["c"]
    assert got == pytest.approx(want, rel=1e-12)
    seed_method = semantic_alignment({"c": r}, {"c": s}, method="norm").per_class["c"]
    assert seed_method > want


def test_sliced_sees_direction_change_norm_does_not():
    rng = np.random.default_rng(2)
    norms = rng.uniform(1, 2, 500)
    real = np.zeros((500, 8))
    real[:, 0] = norms
    synth = np.zeros((500, 8))
    synth[:, 1] = norms  # same norms, rotated embedding
    assert semantic_alignment({"c": real}, {"c": synth}, method="norm").passed
    res = semantic_alignment({"c": real}, {"c": synth}, method="sliced")
    assert not res.passed and res.per_class["c"] > 0.15


def test_missing_class_scores_one_and_synthetic_only_listed():
    rng = np.random.default_rng(3)
    real = {"wheelchair_user": rng.normal(size=(20, 8)), "vehicle": rng.normal(size=(20, 8))}
    synth = {"vehicle": real["vehicle"], "cargo_pallet": rng.normal(size=(5, 8)), "wheelchair_user": np.zeros((0, 8))}
    res = semantic_alignment(real, synth)
    assert res.per_class["wheelchair_user"] == 1.0
    assert res.missing_in_synthetic == ["wheelchair_user"]
    assert res.synthetic_only == ["cargo_pallet"]
    assert res.failed_classes == ["wheelchair_user"]
    assert res.to_dict()["per_class"]["vehicle"] == 0.0


def test_alignment_bad_input():
    with pytest.raises(SimGapInputError, match="D=8 but synthetic features have D=4"):
        semantic_alignment({"c": np.ones((3, 8))}, {"c": np.ones((3, 4))})
    with pytest.raises(SimGapInputError, match="method"):
        semantic_alignment({}, {}, method="kl")
    with pytest.raises(SimGapInputError, match="non-finite"):
        semantic_alignment({"c": np.full((3, 2), np.nan)}, {"c": np.ones((3, 2))})
    for n_projections in (0, -1):  # -1 used to surface as numpy's "negative dimensions are not allowed"
        with pytest.raises(SimGapInputError, match="n_projections must be >= 1"):
            semantic_alignment({"c": np.ones((3, 2))}, {"c": np.ones((3, 2))}, n_projections=n_projections)


# --------------------------------------------------------------------------- backbone / features


def test_backbone_deterministic_and_invariances():
    rng = np.random.default_rng(4)
    crop = rng.normal(0, 0.4, (200, 3)) * [1, 1, 3]
    a, b = FrozenBackbone(), FrozenBackbone()
    ea = a.embed(crop)
    assert ea.dtype == np.float32 and ea.shape == (a.dim,)
    np.testing.assert_array_equal(ea, b.embed(crop))
    np.testing.assert_allclose(a.embed(crop + [50.0, -20.0, 3.0]), ea, rtol=1e-4, atol=1e-4)  # centred
    assert np.linalg.norm(a.embed(crop * 2.0) - ea) > 0.1 * np.linalg.norm(ea)  # size matters
    assert not np.allclose(FrozenBackbone(seed=1).embed(crop), ea)


def _frame():
    rng = np.random.default_rng(5)
    pts, sem, inst = [], [], []
    for sid, iid, n, centre in [(1, 0, 300, (0, 0, 0)), (2, 1, 50, (5, 0, 0)), (2, 2, 40, (9, 0, 0)),
                                (3, 3, 30, (0, 7, 0)), (3, 4, 5, (0, 9, 0))]:  # fmt: skip
        pts.append(rng.normal(0, 0.3, (n, 3)) + centre)
        sem += [sid] * n
        inst += [iid] * n
    labels = {1: "ground", 2: "pedestrian", 3: "vehicle"}
    return make_frame(np.vstack(pts), np.array(sem), np.array(inst), labels), np.vstack(pts), np.array(inst)


def test_instance_features_groups_instances():
    frame, pts, inst = _frame()
    bb = FrozenBackbone()
    feats = instance_features(frame, bb, min_points=8)
    assert sorted(feats) == ["pedestrian", "vehicle"]  # ground has instance 0 only: skipped
    assert feats["pedestrian"].shape == (2, bb.dim)
    assert feats["vehicle"].shape == (1, bb.dim)  # the 5-point instance is below min_points
    # the second pedestrian row is instance 2's crop, as stored in the frame (float32)
    np.testing.assert_allclose(feats["pedestrian"][1], bb.embed(frame["data"][inst == 2]), rtol=1e-6)
    assert instance_features(frame, bb, min_points=5)["vehicle"].shape == (2, bb.dim)


def test_instance_features_any_uint32_semantic_id():
    # the contract allows any uint32 id; a (semantic << 32) key in int64 overflowed from 2**31 on (KeyError)
    rng = np.random.default_rng(13)
    big = 2**32 - 7
    sem = np.r_[np.full(20, big), np.full(10, 3)]
    frame = make_frame(rng.random((30, 3)), sem, np.full(30, 9), {big: "big", 3: "small"})
    feats = instance_features(frame, FrozenBackbone(), min_points=8)
    assert {k: v.shape[0] for k, v in feats.items()} == {"big": 1, "small": 1}


def test_torchscript_backbone(tmp_path):
    torch = pytest.importorskip("torch")

    class MeanMax(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x.mean(dim=1), x.amax(dim=1)], dim=1)

    path = tmp_path / "bb.pt"
    torch.jit.script(MeanMax()).save(str(path))
    bb = FrozenBackbone.from_torchscript(path)
    crop = np.array([[0.0, 0, 0], [2, 4, 6]])
    np.testing.assert_allclose(bb.embed(crop), [1, 2, 3, 2, 4, 6])
    with pytest.raises(SimGapInputError, match="does not exist"):
        FrozenBackbone.from_torchscript(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(SimGapInputError, match="not a TorchScript module"):
        FrozenBackbone.from_torchscript(tmp_path / "junk.pt")


# --------------------------------------------------------------------------- scores


def test_normalized_and_combined_scores():
    assert normalized_score(0.0, 2.0) == 1.0
    assert normalized_score(0.5, 2.0) == pytest.approx(0.75)
    assert normalized_score(5.0, 2.0) == 0.0
    with pytest.raises(SimGapInputError, match="d_max"):
        normalized_score(0.1, 0.0)
    assert combined_score(0.81, 0.19) == pytest.approx(math.sqrt(0.81 * 0.81))
    with pytest.raises(SimGapInputError, match="js"):
        combined_score(0.5, 1.5)


def test_dogss_geometric_score_units():
    rng = np.random.default_rng(6)
    real = rng.random((150, 3)) * 4
    synth = real[:120] + rng.normal(0, 0.05, (120, 3))
    cd = _brute_chamfer(real, synth)
    assert dogss_geometric_score(real, synth, max_expected_distance=0.5, device="cpu") == pytest.approx(
        1 - cd / 0.5, rel=1e-6
    )
    d = np.linalg.norm(real[:, None] - synth[None], axis=-1)
    cd2 = 0.5 * ((d.min(1) ** 2).mean() + (d.min(0) ** 2).mean())
    got = dogss_geometric_score(real, synth, max_expected_distance=0.5, squared=True, device="cpu")
    assert got == pytest.approx(1 - cd2 / 0.25, rel=1e-6)
    assert dogss_geometric_score(real, real + 10, max_expected_distance=0.5, device="cpu") == 0.0


# --------------------------------------------------------------------------- calibration


def test_calibrate_rule():
    rng = np.random.default_rng(7)
    base = rng.random((120, 3)) * 5
    frames = [base + rng.normal(0, 0.02 * (1 + i), base.shape) for i in range(6)]
    cds = np.array([_brute_chamfer(frames[i], frames[i + 1]) for i in range(5)])
    np.testing.assert_allclose(calibration_distances(frames, device="cpu"), cds, rtol=1e-6)
    d_max = calibrate(frames, quantile=0.95, target_g=0.75, device="cpu")
    assert d_max == pytest.approx(np.quantile(cds, 0.95) / 0.25, rel=1e-6)
    # with quantile 1 every real pair passes the gate it calibrated, and the worst one sits at the threshold
    d_all = calibrate(frames, quantile=1.0, target_g=0.75, device="cpu")
    assert min(normalized_score(c, d_all) for c in cds) == pytest.approx(0.75)
    # frame dicts and (name, frame) tuples are accepted too
    dicts = [{"data": f} for f in frames]
    assert calibrate(dicts, device="cpu") == pytest.approx(d_max)
    assert calibrate([(str(i), d) for i, d in enumerate(dicts)], device="cpu") == pytest.approx(d_max)
    # squared Chamfer: d_max = sqrt(Q(CD^2) / (1 - target_g)), still metres
    cds2 = np.array([_brute_chamfer_squared(frames[i], frames[i + 1]) for i in range(5)])
    sq = calibrate(frames, squared=True, device="cpu")
    assert sq == pytest.approx(math.sqrt(np.quantile(cds2, 0.95) / 0.25), rel=1e-6)


def test_calibrate_errors():
    with pytest.raises(ReferenceDataError, match="at least 2"):
        calibrate([np.zeros((4, 3))], device="cpu")
    same = np.random.default_rng(0).random((10, 3))
    with pytest.raises(ReferenceDataError, match="identical"):
        calibrate([same, same], device="cpu")
    # no pair at all is not a calibration (a lazy iterator used to crash on the empty result)
    for max_pairs in (0, -3):
        with pytest.raises(SimGapInputError, match="max_pairs must be >= 1"):
            calibration_distances((f for f in (same, same + 1.0)), max_pairs=max_pairs, device="cpu")
        with pytest.raises(SimGapInputError, match="max_pairs must be >= 1"):
            calibrate([same, same + 1.0], max_pairs=max_pairs, device="cpu")


def test_calibration_streams_and_spreads_pairs():
    rng = np.random.default_rng(12)
    frames = [rng.random((40, 3)) + i for i in range(9)]  # frame i shifted by i: pair CDs grow with i
    all_cds = np.array([_brute_chamfer(frames[i], frames[i + 1]) for i in range(8)])
    # a generator with n_frames: 3 pairs spread over 8 -> pairs starting at 0, 4 (rounded 3.5) and 7
    got = calibration_distances((f for f in frames), max_pairs=3, n_frames=9, device="cpu")
    np.testing.assert_allclose(got, all_cds[[0, 4, 7]], rtol=1e-6)
    # a generator without a length: the first max_pairs pairs
    got = calibration_distances((f for f in frames), max_pairs=2, device="cpu")
    np.testing.assert_allclose(got, all_cds[:2], rtol=1e-6)


def test_pair_names():
    from simgap_ext.metrics.paired import pair_names

    pairs, mode, warns = pair_names(["000000", "000001", "000002"], ["000000", "000002"])
    assert (pairs, mode) == ([("000000", "000000"), ("000002", "000002")], "name")
    assert "1 real scans have no synthetic twin" in warns[0]
    # one name matches: pair by name, never real "b" with synthetic "a" while a real "a" exists
    pairs, mode, warns = pair_names(["a", "b", "c"], ["a", "x"])
    assert (pairs, mode) == ([("a", "a")], "name")
    assert "1 synthetic scans have no real scan of the same name" in warns[0]
    assert "2 real scans have no synthetic twin" in warns[1]
    pairs, mode, warns = pair_names(["a", "b", "c"], ["x", "y"])
    assert (pairs, mode) == ([("a", "x"), ("b", "y")], "order")
    assert "do not match" in warns[0] and "1 scans are left unpaired" in warns[1]
