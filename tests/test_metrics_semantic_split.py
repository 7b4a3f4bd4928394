"""permutation_debiased_js (the quarantine's JS) against its definition: semantic_alignment on every split."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.metrics import FrozenBackbone, semantic_alignment
from simgap_ext.metrics.semantic import _bin_indices, permutation_debiased_js


def _by_definition(real, synth, *, n_bins, method, n_permutations):
    """The quarantine's JS as it was defined: one semantic_alignment per split (raw, then each permutation)."""

    def raw(r, s):
        return semantic_alignment({"c": r}, {"c": s}, n_bins=n_bins, method=method).per_class["c"]

    value = raw(real, synth)
    if n_permutations == 0:
        return value
    pooled = np.concatenate([real, synth], axis=0)
    rng = np.random.default_rng(0)
    k = real.shape[0]
    null = [raw(pooled[p[:k]], pooled[p[k:]]) for p in (rng.permutation(len(pooled)) for _ in range(n_permutations))]
    return max(0.0, value - float(np.max(null)))


@pytest.mark.parametrize("method", ["sliced", "norm"])
@pytest.mark.parametrize(("k", "m", "shift"), [(12, 9, 0.0), (40, 70, 0.3), (5, 150, 1.5), (1, 1, 0.0)])
def test_equals_semantic_alignment_on_every_split(method, k, m, shift):
    rng = np.random.default_rng(k * 1000 + m)
    real = rng.normal(size=(k, 24)).astype(np.float32)
    synth = (rng.normal(size=(m, 24)) + shift).astype(np.float32)
    for n_bins, n_perm in ((16, 8), (50, 3), (4, 0)):
        want = _by_definition(real, synth, n_bins=n_bins, method=method, n_permutations=n_perm)
        got = permutation_debiased_js(real, synth, n_bins=n_bins, method=method, n_permutations=n_perm)
        assert got == pytest.approx(want, abs=1e-12)


def test_equals_the_definition_on_backbone_embeddings_of_real_crops():
    """Embeddings of real KITTI-360 points (the quarantine's input), split into two groups of crops."""
    from pathlib import Path

    scan = Path(__file__).parent / "data" / "kitti360_nn" / "0000002000_every10th.bin"
    pts = np.fromfile(scan, np.float32).reshape(-1, 4)[:, :3]
    order = np.argsort(np.arctan2(pts[:, 1], pts[:, 0]), kind="stable")
    crops = np.array_split(pts[order], 60)
    bb = FrozenBackbone()
    emb = np.stack([bb.embed(c) for c in crops if len(c)])
    real, synth = emb[:25], emb[25:]
    assert emb.shape == (60, FrozenBackbone().dim)
    want = _by_definition(real, synth, n_bins=16, method="sliced", n_permutations=8)
    assert permutation_debiased_js(real, synth) == pytest.approx(want, abs=1e-12)


def test_bins_are_numpy_histograms_including_values_on_edges():
    rng = np.random.default_rng(3)
    for n_bins in (1, 3, 16, 50):
        base = rng.normal(size=500)
        edges = np.linspace(base.min(), base.max(), n_bins + 1)
        x = np.concatenate([base, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
        x = np.clip(x, base.min(), base.max())
        idx = _bin_indices(x, n_bins)
        want, _ = np.histogram(x, bins=n_bins, range=(float(x.min()), float(x.max())))
        np.testing.assert_array_equal(np.bincount(idx, minlength=n_bins), want)
    assert _bin_indices(np.full(7, 2.5), 16) is None


def test_constant_statistics_and_bad_input():
    same = np.ones((6, 4), np.float32)
    assert permutation_debiased_js(same, same) == 0.0
    with pytest.raises(SimGapInputError, match="D=4 but synthetic features have D=3"):
        permutation_debiased_js(same, np.ones((2, 3)))
    with pytest.raises(SimGapInputError, match="instances on both sides"):
        permutation_debiased_js(same, np.zeros((0, 4)))
    with pytest.raises(SimGapInputError, match="method"):
        permutation_debiased_js(same, same, method="nope")
