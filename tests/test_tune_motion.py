"""Motion skew (simgap_ext.tune.motion): the estimator, the fitted model terms, the renderer and the post-process.

References are independent of the code under test: analytic cones of a sensor moving over a flat ground (ray /
plane intersections by hand), the gate's own ``apparent_origin`` against a least-squares projection computed here,
sweep fractions computed from the azimuth by hand, and GICP registration of consecutive real nuScenes keyframes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.backends.warp import WarpLidarSource
from simgap_ext.backends.warp.raycast import build_mesh, cast_spinning, spinning_directions
from simgap_ext.errors import SimGapInputError
from simgap_ext.gate.origin import apparent_origin
from simgap_ext.sensors import load_sensor_profile, profile_to_toml
from simgap_ext.tune import SensorEffectModel, apply_sensor_effects, fit_effect_model
from simgap_ext.tune.fit import RealScan
from simgap_ext.tune.model import DEFAULT_COS_EDGES, DEFAULT_RANGE_EDGES
from simgap_ext.tune.motion import measure_sweep_motion
from simgap_ext.tune.profile import tuned_profile
from simgap_ext.tune.real import list_nuscenes_scans, load_nuscenes_scan

DATA = Path(__file__).parent / "data" / "nuscenes_hdl32"
HEIGHT = 1.8
ELEV = tuple(np.linspace(-6.0, -28.0, 8).tolist())  # 8 beams, all on the ground within 17 m


def _model(elevations=ELEV, columns=360, **motion) -> SensorEffectModel:
    """A hand-set model without drop or noise (only geometry and, optionally, motion skew)."""
    n_r, n_i, n_b = len(DEFAULT_RANGE_EDGES) - 1, len(DEFAULT_COS_EDGES) - 1, len(elevations)
    q = tuple(np.linspace(0.0, 0.5, 11).tolist())
    return SensorEffectModel(
        elevations_deg=tuple(elevations),
        columns=columns,
        classes=("other", "ground"),
        range_edges=DEFAULT_RANGE_EDGES,
        cos_edges=DEFAULT_COS_EDGES,
        drop_bias=-60.0,
        drop_beam=(0.0,) * n_b,
        drop_range=(0.0,) * n_r,
        drop_cos=(0.0,) * n_i,
        drop_class=(0.0, 0.0),
        noise_sigma=((0.0,) * n_r,) * 2,
        intensity_quantiles=((q,) * n_r,) * 2,
        **motion,
    )


def _tau_by_hand(azimuth_rad: np.ndarray, start_deg: float, clockwise: bool) -> np.ndarray:
    deg = np.degrees(azimuth_rad)
    turned = (start_deg - deg) if clockwise else (deg - start_deg)
    return np.mod(turned, 360.0) / 360.0


def _moving_cones(w, reference, start_deg, clockwise, *, columns=360, noise=0.0, seed=0):
    """Points of a sensor at HEIGHT over flat ground moving by ``w`` over its sweep, in the reference frame.

    Returns (B, C, 3) points with columns in firing order and the (C,) azimuth of each column."""
    rng = np.random.default_rng(seed)
    tau = np.arange(columns) / columns
    sign = -1.0 if clockwise else 1.0
    az = np.radians(start_deg) + sign * 2.0 * np.pi * tau
    pos = (tau - reference)[:, None] * np.asarray(w, dtype=np.float64)[None]  # (C, 2) sensor position
    reach = HEIGHT / np.tan(-np.radians(np.asarray(ELEV)))  # (B,) horizontal reach of each beam on the ground
    xy = pos[None] + reach[:, None, None] * np.stack([np.cos(az), np.sin(az)], -1)[None]
    pts = np.concatenate([xy, np.full((*xy.shape[:2], 1), -HEIGHT)], axis=-1)
    pts += noise * rng.standard_normal(pts.shape)
    return pts, np.degrees(az) % 360.0


def test_estimator_recovers_the_sweep_displacement_of_analytic_cones():
    w = np.array([0.05, 0.3])
    pts, _ = _moving_cones(w, 1.0, 182.0, True, noise=0.005)
    b, c = np.meshgrid(np.arange(len(ELEV)), np.arange(360), indexing="ij")
    m = measure_sweep_motion(pts.reshape(-1, 3), (c / 360).reshape(-1), b.reshape(-1), ELEV)
    assert m is not None
    # 5 mm noise on every coordinate (times cot(6 deg) ~ 10 along the shallowest beam): within 1 cm
    np.testing.assert_allclose(m.displacement, w, atol=0.01)
    assert abs(m.reference - 1.0) < 0.03
    np.testing.assert_allclose(m.start, -w, atol=0.01)
    # a sensor at rest: no displacement, no reference
    pts0, _ = _moving_cones(np.zeros(2), 1.0, 182.0, True, noise=0.005)
    m0 = measure_sweep_motion(pts0.reshape(-1, 3), (c / 360).reshape(-1), b.reshape(-1), ELEV)
    assert np.hypot(*m0.displacement) < 0.01 and math.isnan(m0.reference)
    with pytest.raises(ValueError, match="points must be"):
        measure_sweep_motion(np.zeros((5, 2)), np.zeros(5), np.zeros(5), ELEV)


def test_fit_recovers_speed_heading_spin_and_reference_over_scans():
    """Three scans of one drive at 0.2 / 0.25 / 0.3 m per sweep towards +y, compensated to the sweep's start."""
    scans = []
    for i, d in enumerate((0.2, 0.25, 0.3)):
        pts, az = _moving_cones(np.array([0.0, d]), 0.0, 100.0, False, noise=0.005, seed=i)
        r = np.linalg.norm(pts, axis=-1).astype(np.float32)
        scans.append(
            RealScan(
                r,
                np.full(r.shape, "ground", dtype=object),
                np.zeros(r.shape, np.float32),
                np.asarray(ELEV),
                name=f"s{i}",
                azimuth_deg=az,
                xyz=pts.astype(np.float32),
            )
        )
    model = fit_effect_model(scans)
    assert abs(model.motion_sweep_m - 0.25) < 0.01
    assert abs(model.motion_heading_deg - 90.0) < 2.0
    assert abs(model.motion_reference - 0.0) < 0.03
    assert model.sweep_clockwise is False and abs(model.sweep_start_deg - 100.0) < 0.5
    assert 0.0 < model.motion_sweep_sd_m < 0.1
    # scans without firing-ordered points leave the sensor at rest
    still = fit_effect_model([RealScan(s.range, s.classes, s.intensity, s.elevations_deg) for s in scans])
    assert not still.has_motion


def _projection(model: SensorEffectModel, w: np.ndarray) -> np.ndarray:
    """What apparent_origin should read on flat ground: the least-squares (cos, sin) part of the apex offset
    ``s(tau(theta)) . u(theta)`` over 1-degree sectors (a constant absorbs the ring radius)."""
    th = np.radians(np.arange(360) + 0.5 - 180.0)
    tau = _tau_by_hand(th, model.sweep_start_deg, model.sweep_clockwise)
    f = (tau - model.motion_reference) * (w[0] * np.cos(th) + w[1] * np.sin(th))
    design = np.stack([np.ones_like(th), np.cos(th), np.sin(th)], 1)
    return np.linalg.lstsq(design, f, rcond=None)[0][1:]


def test_moving_render_has_the_predicted_apparent_origin():
    """Rays cast from each column's moving origin over a ground plane: the gate's apparent origin equals the
    projection of the model's trajectory computed here (and 0 for the same model at rest)."""
    model = _model(columns=1080, motion_sweep_m=0.3, motion_heading_deg=90.0, sweep_start_deg=182.0)
    w = model.sweep_displacement()
    verts = np.array([[-80, -80, -HEIGHT], [80, -80, -HEIGHT], [80, 80, -HEIGHT], [-80, 80, -HEIGHT]], np.float32)
    mesh = build_mesh(verts, np.array([[0, 1, 2], [0, 2, 3]], np.int32), device="cpu")
    az = 2.0 * np.pi * np.arange(1080) / 1080
    offsets = model.motion_offsets(az, w)
    el = np.radians(np.asarray(ELEV))
    hits = cast_spinning(mesh, np.zeros(3), el, 1080, column_offsets=offsets, device="cpu")
    assert (hits.range > 0).all()
    pts = offsets[None] + spinning_directions(el, 1080) * hits.range[..., None]
    # every point lies on the ground plane: the rays really started at the moving origins
    np.testing.assert_allclose(pts[..., 2], -HEIGHT, atol=1e-4)
    expected = _projection(model, w)
    assert np.hypot(*expected) > 0.1  # the test means something: a clearly visible offset
    np.testing.assert_allclose(apparent_origin(pts.reshape(-1, 3)), expected, atol=0.01)
    still = cast_spinning(mesh, np.zeros(3), el, 1080, device="cpu")
    rest = spinning_directions(el, 1080) * still.range[..., None]
    assert np.hypot(*apparent_origin(rest.reshape(-1, 3))) < 0.005
    with pytest.raises(SimGapInputError, match="column_offsets"):
        cast_spinning(mesh, np.zeros(3), el, 1080, column_offsets=np.zeros((5, 3)), device="cpu")


def test_embedded_render_with_motion_moves_the_apparent_origin_as_predicted():
    base = load_sensor_profile("hdl-32").at_rotation_rate(20.0)
    static = _model(base.vertical_angles_deg, base.horizontal_resolution)
    moving = static.replace(motion_sweep_m=0.3, motion_heading_deg=90.0, sweep_start_deg=182.0)
    a = WarpLidarSource(tuned_profile(base, static), "tuned", device="cpu").render(seed=5)
    b = WarpLidarSource(tuned_profile(base, moving), "tuned", device="cpu").render(seed=5)
    w = np.asarray(b["sensor_effects"]["sweep_displacement"])
    np.testing.assert_allclose(w, [0.0, 0.3, 0.0], atol=1e-9)  # no spread: exactly the model's displacement
    assert b["data"].shape[0] <= a["data"].shape[0] + 50  # the moving sensor sees about the same scene
    shift = apparent_origin(b["data"]) - apparent_origin(a["data"])
    np.testing.assert_allclose(shift, _projection(moving, w), atol=0.02)


def test_post_process_moves_each_point_by_its_columns_sensor_position():
    """Same seed with and without motion: the same points survive (the motion draw comes last) and each moves by
    ``w (tau - reference)`` of its column, tau computed here from the azimuth."""
    frame = WarpLidarSource("vlp-16", "ideal", device="cpu").render(seed=2)
    prof = load_sensor_profile("vlp-16")
    static = _model(prof.vertical_angles_deg, prof.horizontal_resolution).replace(
        noise_sigma=((0.02,) * (len(DEFAULT_RANGE_EDGES) - 1),) * 2, drop_bias=-1.5
    )
    moving = static.replace(
        motion_sweep_m=0.4, motion_sweep_sd_m=0.1, motion_heading_deg=30.0, sweep_start_deg=90.0, motion_reference=0.5
    )
    a = apply_sensor_effects(frame, static, seed=11)
    b = apply_sensor_effects(frame, moving, seed=11)
    b2 = apply_sensor_effects(frame, moving, seed=11)
    c = apply_sensor_effects(frame, moving, seed=12)
    np.testing.assert_array_equal(b["data"], b2["data"])  # deterministic per seed
    assert b["data"].shape == a["data"].shape and b["data"].shape[0] < frame["data"].shape[0]  # never adds points
    np.testing.assert_array_equal(b["intensity"], a["intensity"])
    w = np.asarray(b["sensor_effects"]["sweep_displacement"])
    assert w[2] == 0.0 and abs(math.degrees(math.atan2(w[1], w[0])) - 30.0) < 1e-6
    assert c["sensor_effects"]["sweep_displacement"] != b["sensor_effects"]["sweep_displacement"]  # spread
    n_c = prof.horizontal_resolution
    col = np.mod(np.round(np.arctan2(a["data"][:, 1], a["data"][:, 0]) / (2 * np.pi / n_c)), n_c)
    tau = _tau_by_hand(2 * np.pi * col / n_c, 90.0, True)
    expected = a["data"].astype(np.float64) + (tau - 0.5)[:, None] * w[None]
    np.testing.assert_allclose(b["data"], expected, atol=1e-4)
    with pytest.raises(SimGapInputError, match="sweep_displacement"):
        apply_sensor_effects(frame, moving, seed=1, sweep_displacement=[0.1, np.nan, 0])


def test_motion_terms_round_trip_through_toml_and_are_validated(tmp_path):
    model = _model(
        motion_sweep_m=0.27,
        motion_sweep_sd_m=0.04,
        motion_heading_deg=93.5,
        sweep_start_deg=181.7,
        sweep_clockwise=False,
        motion_reference=0.97,
    )
    prof = tuned_profile(load_sensor_profile("vlp-16"), model)
    path = tmp_path / "tuned.toml"
    path.write_text(profile_to_toml(prof, header="test"))
    back = load_sensor_profile(path).preset("tuned").model
    assert back == model and back.sweep_clockwise is False
    d = model.to_dict()
    d.pop("motion_sweep_m")  # a profile written before motion skew existed: a sensor at rest
    assert not SensorEffectModel.from_dict({**d, "motion_sweep_sd_m": 0.0}).has_motion
    for bad, match in (
        ({"motion_reference": 1.5}, "motion_reference"),
        ({"motion_sweep_m": -0.1}, "motion_sweep_m"),
        ({"sweep_start_deg": 360.0}, "sweep_start_deg"),
        ({"sweep_clockwise": 1.0}, "sweep_clockwise"),
        ({"motion_heading_deg": math.inf}, "motion_heading_deg"),
    ):
        with pytest.raises(SimGapInputError, match=match):
            model.replace(**bad)


def test_fit_on_real_nuscenes_keyframes_matches_registration_speed():
    """Three consecutive real keyframes (2 Hz): the fitted displacement per 20 Hz sweep agrees with the ego speed
    from GICP registration (small_gicp) within 15 %, points forward (+y), and the points are compensated to the
    sweep's end (nuScenes); the sweep starts behind-left (~182 degrees) and spins clockwise."""
    small_gicp = pytest.importorskip("small_gicp")
    scans = [load_nuscenes_scan(d) for d in list_nuscenes_scans(DATA)]
    model = fit_effect_model(scans)
    clouds = [s.xyz[s.range > 2.0].astype(np.float64) for s in scans]
    steps = []
    init = np.eye(4)
    for a, b in zip(clouds[:-1], clouds[1:], strict=True):
        for res, corr in ((0.5, 5.0), (0.25, 1.0)):
            init = small_gicp.align(
                a, b, init_T_target_source=init, downsampling_resolution=res, max_correspondence_distance=corr,
                num_threads=1, max_iterations=50,
            ).T_target_source  # fmt: skip
        steps.append(np.asarray(init)[:2, 3].copy())
    v = np.mean(steps, axis=0) / 0.5
    predicted = float(np.hypot(*v)) / 20.0
    assert 0.25 < predicted < 0.4  # the car drives at ~6.4 m/s here
    assert abs(model.motion_sweep_m - predicted) < 0.15 * predicted
    assert abs(model.motion_heading_deg - math.degrees(math.atan2(v[1], v[0]))) < 10.0
    assert abs(model.motion_reference - 1.0) < 0.15
    assert model.sweep_clockwise is True and abs(model.sweep_start_deg - 182.0) < 5.0
