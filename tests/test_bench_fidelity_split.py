"""benchmarks/bench_fidelity.py's two folds: which keyframes the tune is fitted on and which make the bank."""

from __future__ import annotations

import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def fidelity():
    return load_benchmark("bench_fidelity")


def test_the_forward_fold_fits_the_first_stretch_and_holds_out_the_rest(fidelity):
    fit, held = fidelity.split_stretches(40, 20)
    assert fit == list(range(20)) and held == list(range(20, 40))


def test_the_reverse_fold_fits_the_last_stretch_and_holds_out_the_first(fidelity):
    fit, held = fidelity.split_stretches(40, 20, reverse=True)
    assert fit == list(range(20, 40)) and held == list(range(20))
    # uneven: the fit stretch is still the last n_fit keyframes and the held-out set everything before it
    fit, held = fidelity.split_stretches(10, 3, reverse=True)
    assert fit == [7, 8, 9] and held == list(range(7))
    assert sorted(fit + held) == list(range(10))


@pytest.mark.parametrize("n_fit", [0, 10, -1])
def test_a_split_without_both_stretches_is_refused(fidelity, n_fit):
    with pytest.raises(ValueError, match="n_fit must be in 1..9"):
        fidelity.split_stretches(10, n_fit)
