"""Scene randomizer: determinism by seed, labels per triangle, focus classes and rare configurations."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.backends.warp import CLASS_IDS, OBJECT_CLASSES, SceneRandomizer
from simgap_ext.backends.warp.meshes import CLASS_BUILDERS
from simgap_ext.backends.warp.raycast import build_mesh, cast_rays
from simgap_ext.errors import SimGapInputError

RAND = SceneRandomizer(sensor_height=1.73, max_range=100.0)


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = RAND.sample(5), RAND.sample(5), RAND.sample(6)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.face_instance, b.face_instance)
    assert a.objects == b.objects
    assert a.vertices.shape != c.vertices.shape or not np.array_equal(a.vertices, c.vertices)


def test_face_labels_are_consistent():
    s = RAND.sample(11)
    assert s.faces.shape[0] == s.face_semantic.shape[0] == s.face_instance.shape[0]
    assert s.faces.min() >= 0 and s.faces.max() < s.vertices.shape[0]
    obj_ids = {CLASS_IDS[c] for c in OBJECT_CLASSES}
    # Background triangles carry instance 0, object triangles a positive instance id of one class only.
    assert (s.face_instance[~np.isin(s.face_semantic, list(obj_ids))] == 0).all()
    assert (s.face_instance[np.isin(s.face_semantic, list(obj_ids))] > 0).all()
    for inst in np.unique(s.face_instance[s.face_instance > 0]):
        assert np.unique(s.face_semantic[s.face_instance == inst]).size == 1
    things = [o for o in s.objects if o.instance_id > 0]
    assert len({o.instance_id for o in things}) == len(things)
    for o in things:
        assert CLASS_IDS[o.class_name] == o.semantic_id
        # street vehicles (parked rows, traffic) reach out to the sensor's range; the others use object_range
        street = {"occluder", "parked", "traffic"} & set(o.tags)
        assert 5.0 <= o.distance <= 40.0 or street
        if street and "occluder" not in street:
            assert o.class_name == "vehicle" and o.distance <= RAND.max_range


def test_sensor_stands_above_the_ground():
    s = RAND.sample(2)
    ground = s.face_semantic == CLASS_IDS["ground"]
    mesh = build_mesh(s.vertices, s.faces[ground], device="cpu")
    down = cast_rays(mesh, s.sensor_origin, np.array([[0.0, 0.0, -1.0]]), device="cpu")
    assert down.range[0] == pytest.approx(1.73, abs=0.08)  # roughness is a few centimetres


@pytest.mark.parametrize("cls", OBJECT_CLASSES)
def test_class_builders_have_plausible_sizes(cls):
    rng = np.random.default_rng(0)
    dims = []
    for _ in range(20):
        m = CLASS_BUILDERS[cls](rng)
        dims.append(np.ptp(m.vertices, axis=0))
        assert m.vertices[:, 2].min() >= -0.01  # rests on the ground in its local frame
    dims = np.array(dims)
    height = dims[:, 2]
    footprint = dims[:, :2].max(axis=1)
    lo_hi = {
        "pedestrian": ((1.0, 2.0), (0.3, 1.3)),
        "vehicle": ((1.2, 2.8), (3.0, 6.1)),  # KITTI Car 3.88 +- 0.43 m long, Van up to ~6 m
        "cyclist": ((1.3, 2.0), (1.5, 2.0)),
        "wheelchair_user": ((1.1, 1.6), (0.6, 1.0)),
        "cargo_pallet": ((0.1, 2.0), (1.19, 1.26)),  # a load box may be turned slightly
    }[cls]
    assert lo_hi[0][0] <= height.min() and height.max() <= lo_hi[0][1]
    assert lo_hi[1][0] <= footprint.min() and footprint.max() <= lo_hi[1][1]
    assert np.ptp(height) > 0.05  # dimensions vary


def test_focus_classes_get_extra_instances():
    for seed in range(5):
        s = RAND.sample(seed, focus_classes=["wheelchair_user", "cargo_pallet"])
        for cls in ("wheelchair_user", "cargo_pallet"):
            focus = [o for o in s.instances_of(cls) if "focus" in o.tags]
            assert 2 <= len(focus) <= 4
            assert len(s.instances_of(cls)) >= len(focus)
        assert s.focus_classes == ("wheelchair_user", "cargo_pallet")


def test_unknown_focus_or_rare_mode():
    with pytest.raises(SimGapInputError, match=r"unknown focus class\(es\) \['dog'\]"):
        RAND.sample(0, focus_classes=["dog"])
    with pytest.raises(SimGapInputError, match="unknown rare configuration 'foggy'"):
        RAND.sample(0, rare="foggy")


def test_rare_far_places_targets_far():
    s = RAND.sample(3, focus_classes=["pedestrian"], rare="far")
    peds = s.instances_of("pedestrian")
    assert peds and all(40.0 <= o.distance <= 70.0 for o in peds)
    assert all(o.distance <= 40.0 for o in s.instances_of("cyclist"))


def _instance_height(scene, inst):
    f = scene.faces[scene.face_instance == inst]
    return np.ptp(scene.vertices[f.reshape(-1), 2])


def test_rare_adverse_pose_lies_objects_down():
    normal, adverse = [], []
    for seed in range(6):
        n = RAND.sample(seed, focus_classes=["pedestrian"])
        a = RAND.sample(seed, focus_classes=["pedestrian"], rare="adverse_pose")
        normal += [_instance_height(n, o.instance_id) for o in n.instances_of("pedestrian")]
        adverse += [_instance_height(a, o.instance_id) for o in a.instances_of("pedestrian")]
    # Standing people are 1.1-1.95 m tall; lying or strongly tilted ones much lower on average.
    assert min(normal) > 1.0
    assert np.mean(adverse) < 0.75 * np.mean(normal)


def test_rare_occluded_puts_something_in_the_line_of_sight():
    s = RAND.sample(4, focus_classes=["pedestrian"], rare="occluded")
    mesh = build_mesh(s.vertices, s.faces, device="cpu")
    targets = [o for o in s.instances_of("pedestrian") if "occluded" in o.tags]
    assert len(targets) >= 2
    assert any("occluder" in o.tags for o in s.objects)
    blocked_fraction = []
    for o in targets:
        verts = s.vertices[np.unique(s.faces[s.face_instance == o.instance_id])]
        d = verts - s.sensor_origin
        dist = np.linalg.norm(d, axis=1)
        hits = cast_rays(mesh, s.sensor_origin, d, device="cpu")
        face_inst = np.where(hits.hit, s.face_instance[np.maximum(hits.face, 0)], 0)
        blocked = hits.hit & (hits.range < dist - 0.3) & (face_inst != o.instance_id)
        blocked_fraction.append(blocked.mean())
    # Most targets are at least partly hidden (an occluder may land beside the line of sight when space is tight).
    assert np.mean([b > 0.05 for b in blocked_fraction]) >= 0.5


def test_a_bare_class_name_is_one_focus_class():
    assert RAND.sample(0, focus_classes="cyclist").focus_classes == ("cyclist",)
