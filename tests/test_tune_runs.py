"""The drop shift per run of columns (``drop_run_columns``): marginal drop, kept isolated drop, determinism, TOML.

A positive ``drop_offset`` with ``drop_run_columns`` > 0 drops whole runs of consecutive columns on a ring (one
random number per run) instead of multiplying every return's isolated drop. The references are independent:
brute-force counts of the returns before and after, the neighbour-test fit (``fit_effect_model``) and the gate's
own ring continuity (``frame_stats``) on rendered frames.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from simgap_ext.backends.warp import WarpLidarSource
from simgap_ext.errors import SimGapInputError
from simgap_ext.gate.frame_stats import frame_stats
from simgap_ext.sensors import EffectSettings, load_sensor_profile
from simgap_ext.tune import SensorEffectModel, apply_sensor_effects, fit_effect_model
from simgap_ext.tune.apply import run_uniforms
from simgap_ext.tune.model import DEFAULT_COS_EDGES, DEFAULT_RANGE_EDGES
from simgap_ext.tune.real import scan_from_frame

PROFILE = load_sensor_profile("hdl-32").at_rotation_rate(20.0)  # 1085 columns, as nuScenes
GROUND, VEHICLE = 40, 10  # embedded backend semantic ids
LOGIT_5 = float(np.log(0.05 / 0.95))


def _model(**changes) -> SensorEffectModel:
    """5 % isolated drop everywhere, no noise, a +2 logit shift on ``ground`` only."""
    n_r, n_i, n_b = len(DEFAULT_RANGE_EDGES) - 1, len(DEFAULT_COS_EDGES) - 1, PROFILE.channels
    classes = ("other", "ground", "vehicle")
    q = np.linspace(0.0, 0.5, 11)
    m = SensorEffectModel(
        elevations_deg=PROFILE.vertical_angles_deg,
        columns=PROFILE.horizontal_resolution,
        classes=classes,
        range_edges=DEFAULT_RANGE_EDGES,
        cos_edges=DEFAULT_COS_EDGES,
        drop_bias=LOGIT_5,
        drop_beam=(0.0,) * n_b,
        drop_range=(0.0,) * n_r,
        drop_cos=(0.0,) * n_i,
        drop_class=(0.0,) * len(classes),
        noise_sigma=((0.0,) * n_r,) * len(classes),
        intensity_quantiles=((tuple(q),) * n_r,) * len(classes),
        drop_offset=2.0,
        drop_offset_classes=("ground",),
    )
    return m.replace(**changes)


@pytest.fixture(scope="module")
def clean() -> list[dict]:
    src = WarpLidarSource(PROFILE, effects=EffectSettings(), device="cpu")
    return [src.render(seed=s, frame_id=s) for s in (0, 1)]


def _kept(before: list[dict], after: list[dict], cls_id: int) -> float:
    n_in = sum(int((np.asarray(f["info"]["pointSemantic"]) == cls_id).sum()) for f in before)
    n_out = sum(int((np.asarray(f["info"]["pointSemantic"]) == cls_id).sum()) for f in after)
    return n_out / n_in


def _continuity(frames: list[dict], cls: str) -> float:
    """The gate's ring continuity of a class (share of its points with a ring neighbour), pooled over frames."""
    vals, weights = [], []
    for f in frames:
        st = frame_stats(
            f, vertical_angles_deg=PROFILE.vertical_angles_deg, horizontal_resolution=PROFILE.horizontal_resolution
        )
        d = st.class_density(cls)
        if d is not None:
            vals.append(d)
            weights.append(st.class_points.get(cls, 0))
    return float(np.average(vals, weights=weights))


def test_run_uniforms_one_uniform_per_run_of_at_least_two_columns():
    """Runs of >= 2 columns (none of 1 inside a row), mean length within 5 % of the asked 6 (about 5,000 runs),
    uniform values (Kolmogorov-Smirnov p > 0.01 on one value per run), the same for the same seed."""
    u = run_uniforms((32, 1085), 6.0, np.random.default_rng(0))
    again = run_uniforms((32, 1085), 6.0, np.random.default_rng(0))
    np.testing.assert_array_equal(u, again)
    lengths, firsts = [], []
    for row in u:
        cut = np.flatnonzero(np.diff(row) != 0) + 1
        bounds = np.concatenate([[0], cut, [row.size]])
        lengths.extend(np.diff(bounds)[1:-1].tolist())  # inner runs: the first and last are cut by the row ends
        firsts.extend(row[bounds[:-1]].tolist())
    lengths = np.asarray(lengths)
    assert lengths.min() >= 2
    assert abs(lengths.mean() - 6.0) <= 0.3, lengths.mean()
    assert stats.kstest(firsts, "uniform").pvalue > 0.01
    with pytest.raises(SimGapInputError, match="run length"):
        run_uniforms((2, 10), 1.5, np.random.default_rng(0))


def test_runs_keep_the_marginal_drop_and_the_isolated_drop(clean):
    """Same model, shift per return vs per run of 6 columns: ground keeps 1 - sigmoid(logit(0.05) + 2) = 72 % of
    its returns either way (brute-force counts; runs: 0.03, a few run-correlated binomial sigmas), vehicles 95 %;
    but only per return does the neighbour-test fit read the shift (ground isolated drop 0.28 per return, 0.05 +-
    0.03 with runs), and the gate's ground ring continuity stays within 0.01 of the unshifted model's with runs
    while it falls by more than 0.03 per return."""
    per_return = _model()
    runs = _model(drop_run_columns=6.0)
    unshifted = _model(drop_offset=0.0)
    out = {
        name: [apply_sensor_effects(f, m, 20 + i) for i, f in enumerate(clean)]
        for name, m in (("per_return", per_return), ("runs", runs), ("unshifted", unshifted))
    }
    p_ground = 1.0 / (1.0 + np.exp(-(LOGIT_5 + 2.0)))
    assert abs(_kept(clean, out["per_return"], GROUND) - (1.0 - p_ground)) < 0.01
    assert abs(_kept(clean, out["runs"], GROUND) - (1.0 - p_ground)) < 0.03
    assert abs(_kept(clean, out["runs"], VEHICLE) - 0.95) < 0.02
    beams = np.arange(12, PROFILE.channels)

    def fitted_ground_drop(frames: list[dict]) -> float:
        fit = fit_effect_model(
            [scan_from_frame(f, PROFILE.vertical_angles_deg, PROFILE.horizontal_resolution) for f in frames]
        )
        k = fit.classes.index("ground")
        n = beams.size
        return float(np.mean(fit.drop_probability(beams, np.full(n, 8.0), np.full(n, 0.5), np.full(n, k))))

    assert abs(fitted_ground_drop(out["per_return"]) - p_ground) <= 0.03
    assert abs(fitted_ground_drop(out["runs"]) - 0.05) <= 0.03
    base = _continuity(out["unshifted"], "ground")
    assert abs(_continuity(out["runs"], "ground") - base) <= 0.01
    assert _continuity(out["per_return"], "ground") < base - 0.03


def test_runs_are_deterministic_per_seed_and_never_add_points(clean):
    """Every output point is an input point (no noise in this model: exactly), with its labels; same seed, same
    output; another seed, other runs."""
    model = _model(drop_run_columns=4.0)
    a = apply_sensor_effects(clean[0], model, seed=5)
    b = apply_sensor_effects(clean[0], model, seed=5)
    c = apply_sensor_effects(clean[0], model, seed=6)
    np.testing.assert_array_equal(a["data"], b["data"])
    np.testing.assert_array_equal(a["info"]["pointSemantic"], b["info"]["pointSemantic"])
    assert a["data"].shape != c["data"].shape or not np.array_equal(a["data"], c["data"])
    pts_in = {tuple(p) for p in np.asarray(clean[0]["data"]).tolist()}
    assert a["data"].shape[0] < clean[0]["data"].shape[0]
    assert all(tuple(p) in pts_in for p in np.asarray(a["data"]).tolist())


def test_fit_reads_the_run_length_of_the_gaps(clean):
    """Clean renders post-processed with runs of mean 5 columns on ground (shift +1.5 over a near-zero isolated
    drop, so ~20 % of ground is lost in runs): the fit's ``drop_run_columns`` over ground reads the mean length of the
    bounded multi-column gaps, which runs of 5 that merge with a dropped neighbour run (share p) make 5 / (1 - p);
    read back within 15 % of that. The same frames without the shift have no such gaps (the shift stays per return)."""
    model = _model(drop_bias=-8.0, drop_offset=6.6, drop_run_columns=5.0)  # sigmoid(-8 + 6.6) = 0.2
    out = [apply_sensor_effects(f, model, 30 + i) for i, f in enumerate(clean)]
    scans = [scan_from_frame(f, PROFILE.vertical_angles_deg, PROFILE.horizontal_resolution) for f in out]
    fit = fit_effect_model(scans, run_classes=("ground",))
    p = 1.0 / (1.0 + np.exp(8.0 - 6.6))
    assert abs(fit.drop_run_columns - 5.0 / (1.0 - p)) <= 0.15 * 5.0 / (1.0 - p), fit.drop_run_columns
    plain = [scan_from_frame(f, PROFILE.vertical_angles_deg, PROFILE.horizontal_resolution) for f in clean]
    assert fit_effect_model(plain, run_classes=("ground",)).drop_run_columns == 0.0


def test_run_length_round_trips_and_old_profiles_shift_per_return(clean):
    """The key round-trips through the TOML form; a model written before it (no key) loads with 0 and gives the
    same frame as that model with the key set to 0; the key is checked."""
    model = _model(drop_run_columns=7.5)
    back = SensorEffectModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert back == model and back.drop_run_columns == 7.5
    old = {k: v for k, v in _model().to_dict().items() if k != "drop_run_columns"}
    loaded = SensorEffectModel.from_dict(old)
    assert loaded.drop_run_columns == 0.0
    a = apply_sensor_effects(clean[1], loaded, seed=9)
    b = apply_sensor_effects(clean[1], _model(drop_run_columns=0.0), seed=9)
    np.testing.assert_array_equal(a["data"], b["data"])
    shipped = load_sensor_profile("hdl-32-nuscenes").preset("realistic").model
    assert shipped is not None and shipped.drop_run_columns >= 0.0
    for bad in (1.0, -3.0, 1e6):
        with pytest.raises(SimGapInputError, match="drop_run_columns"):
            model.replace(drop_run_columns=bad)


def test_isolated_share_splits_the_shift_between_returns_and_runs(clean):
    """``drop_offset_isolated`` 0.5 on ground: the marginal drop stays sigmoid(logit(0.05) + 2) (brute-force count
    within 0.03) while the neighbour-test fit reads the isolated part sigmoid(logit(0.05) + 1) = 0.125 +- 0.03, between
    the per-run (0.05) and per-return (0.28) extremes. The share is per class and checked."""
    half = _model(drop_run_columns=6.0, drop_offset_isolated=(0.0, 0.5, 0.0))
    out = [apply_sensor_effects(f, half, 40 + i) for i, f in enumerate(clean)]
    p_ground = 1.0 / (1.0 + np.exp(-(LOGIT_5 + 2.0)))
    assert abs(_kept(clean, out, GROUND) - (1.0 - p_ground)) < 0.03
    fit = fit_effect_model(
        [scan_from_frame(f, PROFILE.vertical_angles_deg, PROFILE.horizontal_resolution) for f in out]
    )
    k = fit.classes.index("ground")
    beams = np.arange(12, PROFILE.channels)
    n = beams.size
    p = float(np.mean(fit.drop_probability(beams, np.full(n, 8.0), np.full(n, 0.5), np.full(n, k))))
    assert abs(p - 1.0 / (1.0 + np.exp(-(LOGIT_5 + 1.0)))) <= 0.03, p
    back = SensorEffectModel.from_dict(json.loads(json.dumps(half.to_dict())))
    assert back == half
    for bad in ((0.0, 1.5, 0.0), (0.5, 0.5)):
        with pytest.raises(SimGapInputError, match="drop_offset_isolated"):
            half.replace(drop_offset_isolated=bad)


def test_continuity_shortfall_against_hand_counts(clean):
    """The search's continuity bound: pooled share of points with a ring neighbour (weighted by points, as counted
    by hand from the gate's per-frame values) and the sum of the amounts by which classes with enough real points
    fall below the real continuity (a class above it costs nothing)."""
    from simgap_ext.tune.search import continuity, continuity_shortfall, objective

    sts = [
        frame_stats(
            f, vertical_angles_deg=PROFILE.vertical_angles_deg, horizontal_resolution=PROFILE.horizontal_resolution
        )
        for f in clean
    ]
    got = continuity(sts, ["ground", "vegetation", "no_such_class"])
    assert "no_such_class" not in got
    for c in ("ground", "vegetation"):
        n = [st.class_points[c] for st in sts]
        hand = sum(st.class_density(c) * k for st, k in zip(sts, n, strict=True)) / sum(n)
        assert got[c] == (pytest.approx(hand), sum(n))
    real = {"ground": (got["ground"][0] - 0.02, 5000), "vegetation": (got["vegetation"][0] + 0.05, 10)}
    assert continuity_shortfall(got, real) == 0.0  # ground above real; vegetation: too few real points to count
    assert continuity_shortfall(got, real, min_points=1) == pytest.approx(0.05)
    real["ground"] = (got["ground"][0] + 0.03, 5000)
    assert continuity_shortfall(got, real, min_points=1) == pytest.approx(0.08)
    assert objective([0.8], {"elevation_w1": 1.0}, 0.1, 0.08) == pytest.approx(1 - 0.8 + 0.02 + 0.1 + 0.08)
    with pytest.raises(ValueError, match="continuity_shortfall"):
        objective([0.8], {"elevation_w1": 1.0}, 0.0, -0.1)


def test_search_sets_a_share_per_class_with_real_continuity(clean):
    """One CMA-ES generation (8 evaluations) on three real nuScenes keyframes and one clean render, model fitted on
    those keyframes: with runs the terms carry one per-return share per class, searched (strictly inside (0, 1)) for
    the shifted classes whose continuity the real scans measure on enough points, 1 for the others, and the report
    holds the continuity shortfall. Without runs no share is decoded."""
    from pathlib import Path

    from simgap_ext.tune.real import list_nuscenes_scans, load_nuscenes_scan, nuscenes_frame
    from simgap_ext.tune.search import _decode, search_scene_terms

    dirs = list_nuscenes_scans(Path(__file__).parent / "data" / "nuscenes_hdl32")
    real = [nuscenes_frame(d) for d in dirs]
    model = fit_effect_model([load_nuscenes_scan(d) for d in dirs]).replace(drop_run_columns=4.0)
    tuned, rep = search_scene_terms(
        model, clean[:1], real, max_range=100.0, evaluations=8, seed=3, device="cpu", far_bound=True
    )
    share = dict(zip(tuned.classes, tuned.isolated_share(), strict=True))
    for c in ("ground", "vegetation", "building"):  # >= 2000 real points each in three keyframes
        assert 0.0 < share[c] < 1.0, share
    assert share["vehicle"] == 1.0 and share["other"] == 1.0
    assert rep["evaluations"] == 8 and rep["distances_best"]["continuity_shortfall"] >= 0.0
    assert "drop_offset_isolated" not in _decode(np.zeros(3), 100.0)
