"""WarpLidarSource end to end: frame contract, beam tables, determinism, labels, `simgap render`, and the
ideal-vs-realistic gap being larger than the realistic-vs-realistic one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from simgap_ext import metrics
from simgap_ext._warp import available_devices
from simgap_ext.backends import SceneSource, get_scene_source
from simgap_ext.backends.warp import CLASS_IDS, OBJECT_CLASSES, WarpLidarSource
from simgap_ext.cli import main
from simgap_ext.errors import SimGapInputError
from simgap_ext.frame import validate_frame
from simgap_ext.sensors import load_sensor_profile

DEVICES = available_devices()


@pytest.fixture(scope="module")
def ideal16():
    return WarpLidarSource("vlp-16", "ideal", device="cpu")


@pytest.fixture(scope="module")
def real16():
    return WarpLidarSource("vlp-16", "realistic", device="cpu")


def test_protocol_and_factory():
    src = get_scene_source("warp", sensor="vlp-16", preset="ideal", device="cpu")
    assert isinstance(src, SceneSource)
    assert src.sensor_name == "vlp-16"
    assert set(OBJECT_CLASSES) <= set(src.class_names)
    with pytest.raises(SimGapInputError, match="needs Isaac Sim"):
        get_scene_source("replicator", sensor="vlp-16")
    with pytest.raises(SimGapInputError, match="unknown scene source 'blender'"):
        get_scene_source("blender", sensor="vlp-16")
    with pytest.raises(SimGapInputError, match="unknown preset 'foggy'"):
        get_scene_source("warp", sensor="vlp-16", preset="foggy", device="cpu")


@pytest.mark.parametrize("device", DEVICES)
def test_frame_contract_and_metadata(device):
    src = WarpLidarSource("vlp-16", "realistic", device=device)
    f = src.render(seed=3, focus_classes=["cyclist"], frame_id=7, attempt=1)
    validate_frame(f)
    assert f["data"].dtype == np.float32 and f["data"].shape[1] == 3
    assert f["intensity"].shape == (f["data"].shape[0],)
    assert 0.0 <= f["intensity"].min() and f["intensity"].max() <= 1.0
    assert (f["frame_id"], f["seed"], f["attempt"], f["sensor"]) == (7, 3, 1, "vlp-16")
    assert f["focus_classes"] == ["cyclist"] and f["coordinate_frame"] == "sensor"
    names = {v["class"] for v in f["info"]["idToLabels"].values()}
    assert set(OBJECT_CLASSES) | {"ground", "building", "pole", "vegetation"} <= names
    r = np.linalg.norm(f["data"], axis=1)
    prof = load_sensor_profile("vlp-16")
    assert r.min() >= prof.min_range and r.max() < prof.max_range


def test_points_lie_on_the_beam_table_and_azimuth_grid(ideal16):
    f = ideal16.render(seed=1)
    p = f["data"].astype(np.float64)
    el = np.degrees(np.arcsin(p[:, 2] / np.linalg.norm(p, axis=1)))
    table = np.asarray(load_sensor_profile("vlp-16").vertical_angles_deg)
    nearest = np.abs(el[:, None] - table[None]).min(axis=1)
    assert nearest.max() < 1e-3
    beams = np.abs(el[:, None] - table[None]).argmin(axis=1)
    assert np.unique(beams).size == 16
    az = np.degrees(np.arctan2(p[:, 1], p[:, 0])) % 360.0
    assert np.abs(az / 0.2 - np.round(az / 0.2)).max() < 1e-2
    # Ideal: at most one point per (beam, column) and downward beams see the ground all around.
    cols = np.round(az / 0.2).astype(int) % 1800
    assert np.unique(beams * 1800 + cols).size == p.shape[0]
    assert (np.bincount(beams, minlength=16)[8:] > 900).all()


def test_determinism_by_seed_and_noise_seed(ideal16, real16):
    a, b = real16.render(seed=2), real16.render(seed=2)
    np.testing.assert_array_equal(a["data"], b["data"])
    np.testing.assert_array_equal(a["info"]["pointInstance"], b["info"]["pointInstance"])
    np.testing.assert_array_equal(a["intensity"], b["intensity"])
    c = real16.render(seed=2, noise_seed=1)
    assert c["noise_seed"] == 1 and not np.array_equal(a["data"][:100], c["data"][:100])
    # The noise seed changes only the sensor draws: the ideal scene is the same.
    np.testing.assert_array_equal(ideal16.render(seed=2)["data"], ideal16.render(seed=2, noise_seed=5)["data"])
    # Another scene seed or a re-randomization attempt gives another scene.
    base = ideal16.render(seed=2)["data"]
    assert ideal16.render(seed=3)["data"].shape != base.shape or not np.array_equal(
        ideal16.render(seed=3)["data"], base
    )
    assert not np.array_equal(ideal16.render(seed=2, attempt=1)["data"][:500], base[:500])


def test_labels_match_the_scene_geometry(ideal16):
    scene = ideal16.sample_scene(seed=4)
    f = ideal16.render(seed=4)
    sem, inst = f["info"]["pointSemantic"], f["info"]["pointInstance"]
    world = f["data"] + scene.sensor_origin
    object_ids = [CLASS_IDS[c] for c in OBJECT_CLASSES]
    assert (inst[~np.isin(sem, object_ids)] == 0).all()
    assert (inst[np.isin(sem, object_ids)] > 0).all()
    assert (sem != 0).all()
    for i in np.unique(inst[inst > 0]):
        m = inst == i
        assert np.unique(sem[m]).size == 1
        obj = next(o for o in scene.objects if o.instance_id == i)
        assert CLASS_IDS[obj.class_name] == sem[m][0]
        verts = scene.vertices[np.unique(scene.faces[scene.face_instance == i])]
        lo, hi = verts.min(axis=0) - 1e-3, verts.max(axis=0) + 1e-3
        assert ((world[m] >= lo) & (world[m] <= hi)).all()
    # Ground points lie near the ground patch height field (z within the slope/undulation band).
    ground = world[sem == CLASS_IDS["ground"]]
    assert np.abs(ground[:, 2]).max() < 6.0


def test_objects_get_meaningful_point_counts():
    src = WarpLidarSource("os1-64", "realistic", device="cpu")
    counts = []
    for seed in range(3):
        f = src.render(seed=seed)
        inst = f["info"]["pointInstance"]
        scene = src.sample_scene(seed=seed)
        for o in scene.objects:
            if o.instance_id and o.class_name in ("vehicle", "pedestrian") and o.distance < 25:
                counts.append(int((inst == o.instance_id).sum()))
    assert counts and np.median(counts) >= 40


def test_effect_toggles_move_frame_statistics():
    # the open layout: its far clutter shows the range drop (a street scene is mostly near facades)
    ideal = WarpLidarSource("vlp-16", "ideal", device="cpu", layout="open").render(seed=6)
    real = WarpLidarSource("vlp-16", "realistic", device="cpu", layout="open").render(seed=6)
    no_drop = WarpLidarSource(
        "vlp-16", "realistic", device="cpu", disable=("random_drop", "range_drop", "incidence_drop"), layout="open"
    ).render(seed=6)
    assert real["data"].shape[0] < 0.97 * ideal["data"].shape[0]
    assert no_drop["data"].shape[0] > real["data"].shape[0]
    # Ranges of far returns: realistic loses relatively more of them than near ones.
    far = lambda fr: (np.linalg.norm(fr["data"], axis=1) > 30).mean()  # noqa: E731
    assert far(real) < far(ideal)
    # Physical intensity falls with range; ideal intensity is the per-class reflectivity.
    r = np.linalg.norm(real["data"], axis=1)
    g = real["info"]["pointSemantic"] == CLASS_IDS["ground"]
    near, farther = real["intensity"][g & (r < 10)].mean(), real["intensity"][g & (r > 25)].mean()
    assert near > farther
    gi = ideal["info"]["pointSemantic"] == CLASS_IDS["ground"]
    assert np.unique(ideal["intensity"][gi]).size == 1


def _chamfer(a, b):
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def test_render_cli_writes_semantickitti_that_reads_back(tmp_path):
    out = tmp_path / "r"
    rc = main(
        [
            "render",
            "--sensor",
            "vlp-16",
            "--preset",
            "realistic",
            "--frames",
            "2",
            "--seed",
            "4",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in (out / "velodyne").iterdir()) == ["000000.bin", "000001.bin"]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["000000.label", "000001.label"]
    assert (out / "label_map.yaml").is_file()
    meta = json.loads((out / "render.json").read_text())
    assert [r["seed"] for r in meta["frames"]] == [4, 5]
    from simgap_ext.data import iter_scans

    scans = list(iter_scans(out))
    assert [n for n, _ in scans] == ["000000", "000001"]
    ref = WarpLidarSource("vlp-16", "realistic", device="cpu").render(seed=5, frame_id=1)
    got = scans[1][1]
    np.testing.assert_array_equal(got["data"], ref["data"])
    np.testing.assert_array_equal(got["info"]["pointSemantic"], ref["info"]["pointSemantic"])
    np.testing.assert_array_equal(got["info"]["pointInstance"], ref["info"]["pointInstance"])
    names = {int(k): v["class"] for k, v in got["info"]["idToLabels"].items()}
    assert names[CLASS_IDS["wheelchair_user"]] == "wheelchair_user"
    assert meta["frames"][1]["n_points"] == ref["data"].shape[0]


def test_render_cli_errors(tmp_path, capsys):
    assert main(["render", "--sensor", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown sensor profile 'nope'" in capsys.readouterr().err
    assert main(["render", "--sensor", "vlp-16", "--focus", "dog", "--out", str(tmp_path / "y")]) == 2
    assert "--focus: unknown class(es) ['dog']" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_ideal_vs_realistic_is_further_than_realistic_vs_realistic():
    """Paired frames of the same scenes: two realistic renders (other noise draws) stay closer to each other
    than the ideal render is to either (scipy reference Chamfer and the metrics package)."""
    real_a = WarpLidarSource("vlp-16", "realistic", device="cpu", noise_seed=0, layout="open")
    real_b = WarpLidarSource("vlp-16", "realistic", device="cpu", noise_seed=1, layout="open")
    ideal = WarpLidarSource("vlp-16", "ideal", device="cpu", layout="open")
    rr, ir = [], []
    for seed in (10, 11, 12):
        a, b, i = (s.render(seed=seed)["data"] for s in (real_a, real_b, ideal))
        rr.append(_chamfer(a, b))
        ir.append(_chamfer(i, a))
        assert ir[-1] > rr[-1]
    assert np.mean(ir) > 1.5 * np.mean(rr)
    a, b, i = (s.render(seed=10)["data"] for s in (real_a, real_b, ideal))
    assert metrics.chamfer_distance(a, b, device="cpu") == pytest.approx(rr[0], rel=1e-3)
    assert metrics.chamfer_distance(i, a, device="cpu") > metrics.chamfer_distance(a, b, device="cpu")
    d_max = load_sensor_profile("vlp-16").max_expected_distance
    assert metrics.normalized_score(rr[0], d_max) > metrics.normalized_score(ir[0], d_max)


def test_simgap_score_ranks_ideal_further_than_realistic(tmp_path):
    """End to end through the CLI: `simgap render` three sets of the same scenes, `simgap score --json`."""
    for name, preset, noise in (("real_a", "realistic", "0"), ("real_b", "realistic", "1"), ("ideal", "ideal", "0")):
        args = ["render", "--sensor", "vlp-16", "--preset", preset, "--frames", "2", "--seed", "20", "--layout", "open"]
        assert main([*args, "--noise-seed", noise, "--out", str(tmp_path / name), "--no-progress"]) == 0
    scores = {}
    for synth in ("real_b", "ideal"):
        out = tmp_path / f"{synth}.json"
        args = ["score", "--real", str(tmp_path / "real_a"), "--synthetic", str(tmp_path / synth), "--sensor", "vlp-16"]
        assert main([*args, "--json", str(out), "--no-progress"]) == 0
        scores[synth] = json.loads(out.read_text())["scene_g_mean"]
    assert scores["real_b"] > scores["ideal"] + 0.05


def test_source_pickles_and_renders_the_same():
    import pickle

    src = WarpLidarSource("vlp-16", "realistic", device="cpu")
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.render(seed=8)["data"], src.render(seed=8)["data"])


def test_upper_layers_register_scene_sources():
    from simgap_ext.backends import register_scene_source, unregister_scene_source

    calls = []

    def factory(**kw):
        calls.append(kw)
        return WarpLidarSource(kw["sensor"], kw["preset"], device="cpu")

    register_scene_source("replicator", factory)
    try:
        src = get_scene_source("replicator", sensor="vlp-16", preset="ideal", device=None, rare="far")
        assert isinstance(src, SceneSource)
        assert calls == [{"sensor": "vlp-16", "preset": "ideal", "device": None, "rare": "far"}]
    finally:
        unregister_scene_source("replicator")
    with pytest.raises(SimGapInputError, match="needs Isaac Sim"):
        get_scene_source("replicator", sensor="vlp-16")
    with pytest.raises(SimGapInputError, match="'warp' is built in"):
        register_scene_source("warp", factory)


def test_render_cli_refuses_an_out_dir_with_scans_it_would_not_overwrite(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["render", "--sensor", "vlp-16", "--preset", "ideal", "--seed", "4", "--out", str(out), "--no-progress"]
    assert main([*args, "--frames", "3"]) == 0
    before = (out / "velodyne" / "000002.bin").read_bytes()
    # a shorter render would leave 000002 from the old run in the set, undescribed by the new render.json
    assert main([*args, "--frames", "2"]) == 2
    assert "already holds 1 scan(s) this render would not overwrite (000002.bin)" in capsys.readouterr().err
    assert (out / "velodyne" / "000002.bin").read_bytes() == before
    assert len(json.loads((out / "render.json").read_text())["frames"]) == 3
    # re-running the same render overwrites every scan: allowed (make demo does that)
    assert main([*args, "--frames", "3"]) == 0
