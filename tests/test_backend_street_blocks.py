"""Street layout blocks: facade occupancy and open lots are what the config asks for, read back from the scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simgap_ext.backends.warp import CLASS_IDS, RandomizerConfig, SceneRandomizer
from simgap_ext.errors import SimGapInputError

# No class objects: only the street (road, sidewalks, blocks, trees, poles, parked rows, traffic).
_EMPTY = {"pedestrian": (0, 0), "vehicle": (0, 0)}


def _rand(**kw: object) -> SceneRandomizer:
    return SceneRandomizer(RandomizerConfig(base_counts=_EMPTY, **kw), sensor_height=1.84, max_range=100.0)


def _road_frame(scene, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u along the road, v lateral from the road centre line) of world (x, y) points."""
    yaw, off = scene.road
    u = xy[:, 0] * math.cos(yaw) + xy[:, 1] * math.sin(yaw)
    v = -xy[:, 0] * math.sin(yaw) + xy[:, 1] * math.cos(yaw) - off
    return u, v


@pytest.mark.parametrize("share", [0.3, 0.8])
def test_facade_occupancy_is_recovered_from_the_blocks(share):
    rand = _rand(facade_occupancy=share)
    kinds = [b.kind for seed in range(10) for b in rand.sample(seed).blocks]
    n = len(kinds)
    got = sum(k == "facade" for k in kinds) / n
    # a binomial share: within 3.5 standard errors of the configured occupancy
    assert n > 100
    assert abs(got - share) < 3.5 * math.sqrt(share * (1 - share) / n), (got, share, n)


def test_lot_buildings_stand_at_the_lot_depth_in_the_mesh():
    # every block an open lot; the building at its back must start 25-30 m behind the sidewalk (read off the mesh)
    rand = _rand(facade_occupancy=0.0, lot_depth=(25.0, 30.0))
    checked = 0
    for seed in range(3):
        s = rand.sample(seed)
        assert s.blocks and all(b.kind == "lot" for b in s.blocks)
        # triangle centroids: a box's front face has two, both inside the block's span
        cen = s.vertices[s.faces[s.face_semantic == CLASS_IDS["building"]]].mean(axis=1)
        u, v = _road_frame(s, cen[:, :2].astype(np.float64))
        for b in s.blocks:
            if b.u1 - b.u0 < 4.0:
                continue
            inside = (u > b.u0 + 1.0) & (u < b.u1 - 1.0) & (np.sign(v) == b.side)
            assert inside.any(), b
            gap = float(np.abs(v[inside]).min()) - b.edge
            assert 25.0 - 0.05 <= gap <= 30.0 + 0.05, (gap, b)
            assert gap == pytest.approx(b.front - b.edge, abs=0.05)
            checked += 1
    assert checked > 10


def test_lot_vegetation_grows_inside_the_lots_and_street_trees_follow_their_occupancy():
    none = _rand(facade_occupancy=0.0, tree_occupancy=0.0, lot_vegetation=(0.0, 0.0), lot_depth=(0.0, 0.0))
    assert all(o.class_name != "vegetation" for seed in range(3) for o in none.sample(seed).objects)
    # street trees only: all on the sidewalks (|v| within the road + sidewalk half-width)
    trees = _rand(facade_occupancy=1.0, tree_occupancy=1.0)
    lots = _rand(facade_occupancy=0.0, tree_occupancy=0.0, lot_depth=(20.0, 20.0))
    for seed in range(3):
        s = trees.sample(seed)
        veg = [o for o in s.objects if o.class_name == "vegetation"]
        assert len(veg) > 10
        _, v = _road_frame(s, np.array([o.position[:2] for o in veg]))
        assert np.all(np.abs(v) < s.blocks[0].edge), "a street tree stands off the sidewalk"
        s = lots.sample(seed)
        veg = [o for o in s.objects if o.class_name == "vegetation"]
        assert len(veg) > 10
        _, v = _road_frame(s, np.array([o.position[:2] for o in veg]))
        edge = s.blocks[0].edge
        # planted 2 m into the lot up to 2 m before its building (lot depth 20 m)
        assert np.all((np.abs(v) >= edge + 2.0 - 1e-6) & (np.abs(v) <= edge + 18.0 + 1e-6))


def test_blocks_are_deterministic_per_seed_and_cover_both_sides():
    rand = _rand()
    a, b = rand.sample(7), rand.sample(7)
    assert a.blocks == b.blocks and a.road == b.road
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert {blk.side for blk in a.blocks} == {1.0, -1.0}
    open_layout = SceneRandomizer(RandomizerConfig(street=False), sensor_height=1.84).sample(7)
    assert open_layout.road is None and open_layout.blocks == []


@pytest.mark.parametrize(
    "kw",
    [
        {"facade_occupancy": 1.5},
        {"tree_occupancy": -0.1},
        {"lot_depth": (30.0, 20.0)},
        {"lot_vegetation": (0.0, 4.0)},
        {"street_tree_clearance": -1.0},
        {"street_tree_clearance": float("nan")},
    ],
)
def test_bad_street_config_is_refused(kw):
    with pytest.raises(SimGapInputError, match="RandomizerConfig"):
        RandomizerConfig(**kw)


def test_pruned_street_trees_keep_their_crowns_above_the_clearance():
    from simgap_ext.backends.warp.meshes import make_street_tree

    rng = np.random.default_rng(3)
    lowest = []
    for _ in range(60):
        m = make_street_tree(rng, 2.4)
        crown = np.hypot(m.vertices[:, 0], m.vertices[:, 1]) > 0.35  # the trunk is at most 0.3 m in radius
        lowest.append(float(m.vertices[crown, 2].min()))
    # the crown's lowest point lies clearance + U(0, 2) m up, raised by at most the crown jitter (0.18 of rz)
    assert min(lowest) >= 2.4 - 1e-9
    assert 2.4 < np.median(lowest) < 2.4 + 2.0 + 0.18 * 2 * 3.5 * 1.3


@pytest.mark.parametrize("clearance", [0.0, 2.4])
def test_street_tree_clearance_lifts_the_sidewalk_vegetation(clearance):
    # facades everywhere: no lots, so every vegetation object is a street tree; no crown vertex (farther than a
    # trunk's radius from its tree) under the clearance above the tree's ground point (slopes <= 3 deg: 0.25 m)
    rand = _rand(facade_occupancy=1.0, tree_occupancy=1.0, street_tree_clearance=clearance)
    low = 0
    for seed in range(3):
        s = rand.sample(seed)
        veg = [o for o in s.objects if o.class_name == "vegetation"]
        pos = np.array([o.position for o in veg])
        vid = np.unique(s.faces[s.face_semantic == CLASS_IDS["vegetation"]])
        v = s.vertices[vid].astype(np.float64)
        d = np.hypot(v[:, None, 0] - pos[None, :, 0], v[:, None, 1] - pos[None, :, 1])
        own = d.argmin(axis=1)
        crown = d[np.arange(len(v)), own] > 0.35
        height = v[crown, 2] - pos[own[crown], 2]
        low += int((height < 2.4 - 0.25).sum())
    if clearance > 0:
        assert low == 0
    else:  # the default world's slots hold bushes too: the same reading finds them
        assert low > 100
