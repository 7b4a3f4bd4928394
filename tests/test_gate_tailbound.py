"""The per-class calibration bound (simgap_ext.gate.tailbound) against SciPy and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simgap_ext.gate.tailbound import loo_deviation_bound


def _loo(v: np.ndarray) -> np.ndarray:
    """|v_j - mean of the others|, as the bank calibrates ring continuity and plausibility."""
    return np.abs(v - (v.sum() - v) / (v.size - 1))


@pytest.mark.parametrize("n", [2, 3, 4, 9, 17])
@pytest.mark.parametrize("q", [0.9, 0.95, 0.995])
def test_loo_bound_is_the_scipy_prediction_interval_of_the_underlying_values(n: int, q: float):
    """From the leave-one-out deviations alone, the bound equals the textbook normal prediction interval that SciPy
    gives from the frames' statistics themselves: mean(v) + t_{n-1} * std(v) * sqrt(1 + 1/n), two-sided."""
    v = np.random.default_rng(n).normal(0.6, 0.05, n)
    lo, hi = stats.t.interval(q, df=n - 1, loc=v.mean(), scale=v.std(ddof=1) * math.sqrt(1 + 1 / n))
    assert loo_deviation_bound(_loo(v), q) == pytest.approx(hi - v.mean(), rel=1e-9)
    assert loo_deviation_bound(_loo(v), q) == pytest.approx(v.mean() - lo, rel=1e-9)


def test_bounds_approach_the_true_quantile_for_many_values():
    rng = np.random.default_rng(0)
    d = _loo(rng.normal(5.0, 2.0, 20000))
    assert loo_deviation_bound(d, 0.95) == pytest.approx(stats.halfnorm.ppf(0.95, scale=2.0), rel=0.02)


@pytest.mark.parametrize("n", [3, 9])
def test_coverage_by_simulation_where_the_largest_value_falls_short(n: int):
    """A new frame stays below the bound with the asked probability (exact for the model), while the largest of
    n values — the empirical quantile of a handful — is exceeded with probability 1 / (n + 1)."""
    rng = np.random.default_rng(n)
    q, reps = 0.9, 4000
    v = rng.normal(0.0, 1.0, (reps, n + 1))  # n real frames in the bank, one new
    d = np.array([_loo(r[:n]) for r in v])
    new = np.abs(v[:, n] - v[:, :n].mean(axis=1))  # how the gate scores the new frame: against all n
    hn = np.array([loo_deviation_bound(r, q) for r in d])
    se = math.sqrt(q * (1 - q) / reps)
    assert np.mean(new <= hn) == pytest.approx(q, abs=4 * se)
    e = np.abs(rng.normal(0.0, 1.0, (reps, n + 1)))
    assert np.mean(e[:, n] <= e[:, :n].max(axis=1)) == pytest.approx(n / (n + 1), abs=4 * se)


def test_degenerate_values_and_small_samples():
    assert loo_deviation_bound([0.0, 0.0], 0.99) == 0.0
    # fewer values, wider bound: the same RMS from 3 values instead of 20
    assert loo_deviation_bound([0.1] * 3, 0.99) > 3 * loo_deviation_bound([0.1] * 20, 0.99)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: loo_deviation_bound([], 0.9), "no values"),
        (lambda: loo_deviation_bound([0.1], 0.9), "at least 2 values"),
        (lambda: loo_deviation_bound([0.1, -0.2], 0.9), "finite and >= 0"),
        (lambda: loo_deviation_bound([0.1, math.nan], 0.9), "finite and >= 0"),
        (lambda: loo_deviation_bound([0.1, 0.2], 1.0), r"quantile must lie in \(0, 1\)"),
        (lambda: loo_deviation_bound([0.1, 0.2], 0.0), r"quantile must lie in \(0, 1\)"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()
