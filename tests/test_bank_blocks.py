"""benchmarks/bank_blocks.py's blocks of a drive and the off-diagonal of its matrix, against hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bb():
    return load_benchmark("bank_blocks")


def test_blocks_are_consecutive_and_a_short_tail_is_dropped(bb):
    assert bb.blocks(40, 10) == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30)), list(range(30, 40))]
    assert bb.blocks(18, 8) == [list(range(8)), list(range(8, 16))]  # scans 16 and 17 would make a bank of 2


@pytest.mark.parametrize(("n", "size", "match"), [(10, 1, "at least 2 scans"), (15, 10, "fewer than two blocks")])
def test_blocks_refuse_what_cannot_make_two_banks(bb, n, size, match):
    with pytest.raises(ValueError, match=match):
        bb.blocks(n, size)


def test_off_diagonal_keeps_every_bank_against_another_block(bb):
    m = np.array([[np.nan, 0.9, 0.6], [0.8, np.nan, 0.0], [0.7, 1.0, np.nan]])
    np.testing.assert_array_equal(bb.off_diagonal(m), [0.9, 0.6, 0.8, 0.0, 0.7, 1.0])
    with pytest.raises(ValueError, match="square"):
        bb.off_diagonal(np.zeros((2, 3)))
