"""benchmarks/tune_seeds.py's summary of the acceptances over search seeds, against values worked by hand."""

from __future__ import annotations

import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def seeds():
    return load_benchmark("tune_seeds")


def test_spread_is_the_mean_sample_sd_and_range(seeds):
    # 0.6, 0.7, 0.8: mean 0.7; squared deviations 0.01 + 0 + 0.01 over n - 1 = 2: sd 0.1
    s = seeds.spread([0.8, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.7)
    assert s["sd"] == pytest.approx(0.1)
    assert (s["min"], s["max"]) == (pytest.approx(0.6), pytest.approx(0.8))


def test_one_seed_has_no_spread_and_none_is_refused(seeds):
    assert seeds.spread([0.74]) == {"mean": 0.74, "sd": 0.0, "min": 0.74, "max": 0.74}
    with pytest.raises(ValueError, match="spread of no values"):
        seeds.spread([])
