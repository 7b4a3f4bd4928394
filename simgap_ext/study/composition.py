"""Stratified training sets of one fixed size at each real:synthetic ratio.

``simgap mix`` (:func:`~simgap_ext.pipeline.mixing.mix_rows`) takes as many whole ``(q-p) real + p synthetic``
units per class-frequency bucket as the pools allow, so its output size changes with the ratio. A composition
study must compare ratios at the *same* training-set size, so :func:`fixed_size_mix` keeps ``total / q`` of
those units:

- the bucket rules, the exact per-bucket ratio and the seeded draw are ``mix_rows``'s (``val_fraction=0``);
- the ``K = total / q`` units are shared among buckets in proportion to the units ``mix_rows`` found in each
  (largest remainder, ties to the earlier bucket in ``head, body, tail``), so the mix keeps the pools' bucket
  proportions;
- within a bucket, ``k`` of its units are drawn with ``numpy.random.default_rng([seed, bucket number, 1])``:
  ``k (q-p)`` real and ``k p`` synthetic samples.

``total`` must be a multiple of ``q`` (75:25 has ``q = 4``), so that every ratio is exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from ..pipeline.mixing import BUCKETS, mix_rows

__all__ = ["Ratio", "parse_ratios", "FixedMix", "fixed_size_mix", "max_total"]


@dataclass(frozen=True)
class Ratio:
    """A real:synthetic ratio as written (``75:25``).

    Attributes:
        real: the real part.
        synthetic: the synthetic part.
    """

    real: int
    synthetic: int

    @property
    def share(self) -> Fraction:
        """The synthetic share, exact (``75:25`` -> 1/4)."""
        return Fraction(self.synthetic, self.real + self.synthetic)

    @property
    def label(self) -> str:
        """``75:25``."""
        return f"{self.real}:{self.synthetic}"

    @property
    def key(self) -> str:
        """File-name-safe label (``75-25``)."""
        return f"{self.real}-{self.synthetic}"


def parse_ratios(spec: str) -> list[Ratio]:
    """Parse ``"100:0,75:25,50:50"``.

    Returns:
        The ratios in the order given.

    Raises:
        SimGapInputError: malformed entry, negative part, ``0:0``, a synthetic share whose denominator exceeds 100
            (``mix_rows`` works in hundredths), or a ratio given twice.
    """
    out: list[Ratio] = []
    for part in str(spec).split(","):
        part = part.strip()
        bits = part.split(":")
        if len(bits) != 2 or not all(b.strip().isdigit() for b in bits):
            raise SimGapInputError(f"ratio {part!r}: expected REAL:SYNTHETIC with whole numbers, e.g. 75:25")
        r = Ratio(int(bits[0]), int(bits[1]))
        if r.real + r.synthetic == 0:
            raise SimGapInputError(f"ratio {part!r}: both parts are 0")
        if r.share.denominator > 100:
            raise SimGapInputError(f"ratio {part!r}: the synthetic share {r.share} needs a denominator <= 100")
        if any(o.share == r.share for o in out):
            raise SimGapInputError(f"ratio {part!r} is given twice (same synthetic share as another)")
        out.append(r)
    return out


@dataclass
class FixedMix:
    """A training set of fixed size.

    Attributes:
        rows: the chosen rows (copies of the input rows plus ``bucket``), real rows first within each bucket.
        buckets: bucket -> {"real", "synthetic", "real_available", "synthetic_available", "units_available"}.
        class_buckets: class -> bucket (``mix_rows``'s).
        ratio: the synthetic share.
    """

    rows: list[dict[str, Any]]
    buckets: dict[str, dict[str, int]]
    class_buckets: dict[str, str]
    ratio: Fraction


def _units(res_bucket: Mapping[str, int], p: int, q: int) -> int:
    return res_bucket["train_real"] // (q - p) if q > p else res_bucket["train_synthetic"] // p


def _share_units(total_units: int, available: Sequence[int]) -> list[int]:
    s = sum(available)
    exact = [total_units * a / s for a in available]
    k = [math.floor(e) for e in exact]
    order = sorted(range(len(available)), key=lambda i: (-(exact[i] - k[i]), i))
    for i in order[: total_units - sum(k)]:
        k[i] += 1
    return k


def _mix(real_rows, synthetic_rows, share, seed, tail_percentile, head_percentile):
    return mix_rows(
        real_rows,
        synthetic_rows,
        ratio=float(share),
        val_fraction=0.0,
        seed=seed,
        tail_percentile=tail_percentile,
        head_percentile=head_percentile,
    )


def max_total(
    real_rows: Sequence[Mapping[str, Any]],
    synthetic_rows: Sequence[Mapping[str, Any]],
    ratios: Sequence[Ratio],
    *,
    tail_percentile: float = 20.0,
    head_percentile: float = 80.0,
) -> int:
    """The largest training-set size every ratio can fill exactly (a multiple of every ratio's ``q``; 0 if none)."""
    step = 1
    for r in ratios:
        step = step * r.share.denominator // math.gcd(step, r.share.denominator)
    best = None
    for r in ratios:
        res = _mix(real_rows, synthetic_rows, r.share, 0, tail_percentile, head_percentile)
        p, q = res.ratio.numerator, res.ratio.denominator
        n = sum(_units(res.buckets[b], p, q) for b in BUCKETS) * q
        best = n if best is None else min(best, n)
    return 0 if best is None else (best // step) * step


def fixed_size_mix(
    real_rows: Sequence[Mapping[str, Any]],
    synthetic_rows: Sequence[Mapping[str, Any]],
    ratio: Ratio,
    total: int,
    *,
    seed: int = 0,
    tail_percentile: float = 20.0,
    head_percentile: float = 80.0,
) -> FixedMix:
    """A stratified mix of exactly ``total`` samples at ``ratio`` (rules in the module docstring).

    Args:
        real_rows: real rows (``domain == "real"``, with ``class_points``).
        synthetic_rows: synthetic rows (``domain == "synthetic"``, ``decision == "accepted"``).
        ratio: the real:synthetic ratio.
        total: training-set size (> 0, a multiple of ``ratio.share.denominator``).
        seed: sampling seed.
        tail_percentile, head_percentile: bucket cut-offs on real class frequency (``simgap mix``'s).

    Returns:
        A :class:`FixedMix`.

    Raises:
        SimGapInputError: ``total`` not a positive multiple of the ratio's denominator, or more samples asked for
            than the pools hold at this ratio.
    """
    share = ratio.share
    q = share.denominator
    if int(total) != total or total <= 0 or total % q:
        raise SimGapInputError(f"training-set size {total} must be a positive multiple of {q} for ratio {ratio.label}")
    res = _mix(real_rows, synthetic_rows, share, seed, tail_percentile, head_percentile)
    p = res.ratio.numerator
    available = [_units(res.buckets[b], p, q) for b in BUCKETS]
    want = int(total) // q
    if want > sum(available):
        pools = ", ".join(
            f"{b} {res.buckets[b]['real_available']} real/{res.buckets[b]['synthetic_available']} synthetic"
            for b in BUCKETS
        )
        raise SimGapInputError(
            f"ratio {ratio.label}: the pools give {sum(available) * q} stratified samples ({pools}), fewer than "
            f"the {total} asked for"
        )
    ks = _share_units(want, available)
    rows: list[dict[str, Any]] = []
    buckets: dict[str, dict[str, int]] = {}
    for b_idx, (bucket, k) in enumerate(zip(BUCKETS, ks, strict=True)):
        in_bucket = [r for r in res.train if r["bucket"] == bucket]
        real = [r for r in in_bucket if r["domain"] == "real"]
        synth = [r for r in in_bucket if r["domain"] == "synthetic"]
        rng = np.random.default_rng([int(seed), b_idx, 1])
        keep_r = sorted(rng.choice(len(real), k * (q - p), replace=False).tolist()) if q > p else []
        keep_s = sorted(rng.choice(len(synth), k * p, replace=False).tolist()) if p else []
        rows.extend(real[i] for i in keep_r)
        rows.extend(synth[i] for i in keep_s)
        buckets[bucket] = {
            "real": len(keep_r),
            "synthetic": len(keep_s),
            "real_available": res.buckets[bucket]["real_available"],
            "synthetic_available": res.buckets[bucket]["synthetic_available"],
            "units_available": available[b_idx],
        }
    return FixedMix(rows, buckets, dict(res.class_buckets), share)
