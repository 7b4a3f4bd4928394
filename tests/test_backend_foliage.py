"""Volumetric foliage of the embedded backend (:mod:`simgap_ext.backends.warp.foliage`).

References are independent of the code under test: a box's front face at a known distance (hull range by hand),
the exponential distribution's moments, and ``ideal`` renders of the same scene with penetration switched off.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simgap_ext.backends.warp import CLASS_IDS, RandomizerConfig, SceneRandomizer
from simgap_ext.backends.warp.foliage import CLUMP_SIZE, foliage_rng, penetrate, penetration_lut
from simgap_ext.backends.warp.labels import PENETRATION_MEAN
from simgap_ext.backends.warp.meshes import box
from simgap_ext.backends.warp.raycast import build_mesh, cast_rays
from simgap_ext.errors import SimGapInputError
from simgap_ext.frame import id_to_class
from simgap_ext.sensors import EffectSettings

VEG = CLASS_IDS["vegetation"]


def _slab(depth: float):
    """A 20 x 20 m slab whose front face is the plane x = 10 m, ``depth`` metres thick."""
    m = box((depth, 20.0, 20.0), center=(10.0 + 0.5 * depth, 0.0, 0.0))
    return build_mesh(m.vertices, m.faces, device="cpu")


def _rays(n: int, seed: int = 0) -> np.ndarray:
    """(1, n, 3) unit directions within 20 degrees of +x (all hit the slab's front face)."""
    rng = np.random.default_rng(seed)
    d = np.column_stack([np.ones(n), rng.uniform(-0.35, 0.35, n), rng.uniform(-0.35, 0.35, n)])
    return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)[None]


def _hull(mesh, dirs):
    hits = cast_rays(mesh, np.zeros(3), dirs[0])
    assert hits.hit.all()
    return hits.range[None]


def test_penetration_depth_is_exponential_with_the_material_mean():
    mesh, dirs = _slab(50.0), _rays(20000)
    r = _hull(mesh, dirs)
    np.testing.assert_allclose(r[0], 10.0 / dirs[0, :, 0], rtol=1e-4)  # the front face, by hand
    sem = np.full(r.shape, VEG, dtype=np.uint32)
    out = penetrate(mesh, np.zeros(3), dirs, r, sem, np.random.default_rng(1), lut=penetration_lut({"vegetation": 0.3}))
    depth = (out - r)[0]
    assert (depth >= 0).all()
    # one draw per leaf clump: the hits of one CLUMP_SIZE cube share it
    hit_pts = dirs[0] * r[0][:, None]
    clump = np.floor(hit_pts / CLUMP_SIZE).astype(np.int64)
    _, first, which = np.unique(clump, axis=0, return_index=True, return_inverse=True)
    np.testing.assert_allclose(depth, depth[first][which.reshape(-1)], atol=1e-5)
    per_clump = depth[first]
    assert per_clump.size > 1000
    # Exp(0.3) over the clumps: mean 0.3 (4 standard errors), median 0.3 ln 2, and its shape (scipy's KS)
    assert per_clump.mean() == pytest.approx(0.3, abs=4 * 0.3 / np.sqrt(per_clump.size))
    assert np.median(per_clump) == pytest.approx(0.3 * np.log(2.0), abs=0.03)
    assert stats.kstest(per_clump, "expon", args=(0.0, 0.3)).pvalue > 1e-3
    # another scene key draws other depths for the same clumps
    other = penetrate(
        mesh, np.zeros(3), dirs, r, sem, np.random.default_rng(2), lut=penetration_lut({"vegetation": 0.3})
    )
    assert abs(np.corrcoef(depth, (other - r)[0])[0, 1]) < 0.1


def test_returns_stay_inside_the_volume_and_opaque_surfaces_do_not_move():
    mesh, dirs = _slab(0.1), _rays(4000)
    r = _hull(mesh, dirs)
    sem = np.full(r.shape, VEG, dtype=np.uint32)
    sem[0, ::2] = CLASS_IDS["vehicle"]
    out = penetrate(mesh, np.zeros(3), dirs, r, sem, np.random.default_rng(2), lut=penetration_lut({"vegetation": 0.3}))
    np.testing.assert_array_equal(out[0, ::2], r[0, ::2])  # opaque: the hull range
    through = 0.1 / dirs[0, 1::2, 0]  # path length through the 0.1 m slab
    depth = (out - r)[0, 1::2]
    assert (depth <= through + 1e-4).all() and (depth > 0).all()
    # the rays whose Exp(0.3) draw exceeds their path through the slab stop 1 mm short of its back face
    capped = depth > through - 2e-3
    assert capped.mean() == pytest.approx(np.exp(-through / 0.3).mean(), abs=0.03)
    assert (depth[capped] > through[capped] - 2e-3).all()


def test_penetration_validation():
    with pytest.raises(SimGapInputError, match="unknown class 'leaves'"):
        penetration_lut({"leaves": 0.3})
    with pytest.raises(SimGapInputError, match="must be finite and >= 0"):
        penetration_lut({"vegetation": -0.1})
    mesh, dirs = _slab(1.0), _rays(10)
    with pytest.raises(SimGapInputError, match=r"penetrate needs ranges \(B, C\)"):
        penetrate(mesh, np.zeros(3), dirs, np.ones((1, 9), np.float32), np.zeros((1, 9)), np.random.default_rng(0))


@pytest.fixture(scope="module")
def renders():
    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.sensors import load_sensor_profile

    prof = load_sensor_profile("vlp-16")

    def source(preset, effects=None, **kw):
        world = SceneRandomizer(RandomizerConfig(**kw), sensor_height=prof.mount_height, max_range=prof.max_range)
        return WarpLidarSource(prof, preset, device="cpu", randomizer=world, effects=effects)

    hull, foliage = source("ideal", penetration={}), source("ideal")  # the default world is volumetric
    # noise only: every ray still returns
    noisy = source("ideal", effects=EffectSettings(range_noise_sigma=0.01), penetration=PENETRATION_MEAN)
    return {
        "hull": hull.render(seed=5),
        "foliage": foliage.render(seed=5),
        "foliage_again": foliage.render(seed=5),
        "foliage_other": foliage.render(seed=6),
        "noisy_a": noisy.render(seed=5, noise_seed=0),
        "noisy_b": noisy.render(seed=5, noise_seed=1),
    }


def _veg(frame):
    ids = [i for i, n in id_to_class(frame).items() if n == "vegetation"]
    return np.isin(frame["info"]["pointSemantic"], ids)


def test_rendered_vegetation_has_depth_and_nothing_else_moves(renders):
    hull, fol = renders["hull"], renders["foliage"]
    # ideal: no drop, no noise, so both renders hold the same rays in the same order
    assert hull["data"].shape == fol["data"].shape
    np.testing.assert_array_equal(hull["info"]["pointSemantic"], fol["info"]["pointSemantic"])
    veg = _veg(fol)
    assert veg.sum() > 200
    np.testing.assert_array_equal(hull["data"][~veg], fol["data"][~veg])
    r_hull = np.linalg.norm(hull["data"][veg], axis=1)
    r_fol = np.linalg.norm(fol["data"][veg], axis=1)
    depth = r_fol - r_hull
    assert (depth >= -1e-3).all()  # along the ray, away from the sensor
    # same direction: the points moved radially
    cos = np.einsum("ij,ij->i", hull["data"][veg], fol["data"][veg]) / (r_hull * r_fol)
    assert (cos > 1 - 1e-6).all()
    # Exp(mu) per leaf clump, capped at the crown's far side (the cap only shortens): median mu ln 2 at most, and a
    # tail of a few tenths of a metre (uncapped 90th percentile: mu ln 10 = 2.3 mu)
    mu = PENETRATION_MEAN["vegetation"]
    assert 0.5 * mu * np.log(2.0) < np.median(depth) <= mu * np.log(2.0) + 0.01
    assert np.percentile(depth, 90) > 1.5 * mu


def test_foliage_is_deterministic_per_scene_and_shared_by_noise_seeds(renders):
    a, b = renders["foliage"], renders["foliage_again"]
    np.testing.assert_array_equal(a["data"], b["data"])
    assert renders["foliage_other"]["data"].shape != a["data"].shape or not np.array_equal(
        renders["foliage_other"]["data"], a["data"]
    )
    # two noise seeds of one scene see the same leaves: their vegetation ranges differ only by the sensor's 1 cm
    # range noise (Gaussian difference, sigma 1.4 cm), not by a redrawn penetration (tenths of a metre)
    na, nb = renders["noisy_a"], renders["noisy_b"]
    assert na["data"].shape == nb["data"].shape == a["data"].shape
    veg = _veg(a)
    diff = np.linalg.norm(na["data"][veg], axis=1) - np.linalg.norm(nb["data"][veg], axis=1)
    assert np.abs(diff).max() < 0.1 and 0.007 < diff.std() < 0.025
    assert foliage_rng([5, 0, 0]).random() == foliage_rng([5, 0, 0]).random() != foliage_rng([5, 1, 0]).random()
