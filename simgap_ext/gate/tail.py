"""Tail classes of the real reference and the synthetic generation budget that fills them.

Semantics (the DoGSS-PCL seed's, written down here because the seed code is not vendored):

- a *tail class* is a class whose real frequency (instances in the reference) is at or below the N-th
  percentile (default 20, NumPy's linear interpolation) of all real class frequencies;
- the *budget* of a class is its deficit ``max(0, target_per_class - current_count)`` in instances, and the
  estimated generation time is ``deficit / (frames_per_hour * instances_per_frame * acceptance_rate)`` hours,
  i.e. the deficit over the rate at which accepted instances of that class come out of the generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SimGapInputError

__all__ = ["BudgetRow", "identify_tail_classes", "compute_synthetic_generation_budget"]


def _check_counts(class_counts: Mapping[str, int | float]) -> dict[str, float]:
    if not isinstance(class_counts, Mapping) or not class_counts:
        raise SimGapInputError("class_counts must be a non-empty mapping of class name -> count")
    out: dict[str, float] = {}
    for name, count in class_counts.items():
        value = float(count)
        if not math.isfinite(value) or value < 0:
            raise SimGapInputError(f"class_counts[{name!r}] must be a finite count >= 0, got {count!r}")
        out[str(name)] = value
    return out


def identify_tail_classes(class_counts: Mapping[str, int | float], percentile: float = 20.0) -> list[str]:
    """Classes whose real frequency is at or below the ``percentile``-th percentile of all class frequencies.

    Args:
        class_counts: class name -> instance count in the real reference (counts >= 0).
        percentile: in [0, 100]; the seed's default is 20.

    Returns:
        Tail class names, rarest first (ties by name).

    Raises:
        SimGapInputError: empty mapping, negative/non-finite counts, or percentile outside [0, 100].
    """
    counts = _check_counts(class_counts)
    p = float(percentile)
    if not 0.0 <= p <= 100.0:
        raise SimGapInputError(f"percentile must lie in [0, 100], got {percentile}")
    cutoff = float(np.percentile(np.fromiter(counts.values(), dtype=np.float64), p))
    tail = [n for n, c in counts.items() if c <= cutoff]
    return sorted(tail, key=lambda n: (counts[n], n))


@dataclass(frozen=True)
class BudgetRow:
    """Generation budget of one class.

    Attributes:
        class_name: the class.
        current: real instances in the reference (plus any synthetic already accepted, if the caller adds them).
        target: target instances per class.
        deficit: ``max(0, target - current)``.
        is_tail: whether the class is a tail class of the reference.
        rate_per_hour: accepted instances of this class generated per hour.
        estimated_hours: ``deficit / rate_per_hour`` (``inf`` when the rate is 0 and a deficit remains).
        frames_needed: frames to render, ``ceil(deficit / (instances_per_frame * acceptance_rate))``;
            ``None`` when the rate is 0 and a deficit remains.
    """

    class_name: str
    current: int
    target: int
    deficit: int
    is_tail: bool
    rate_per_hour: float
    estimated_hours: float
    frames_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``estimated_hours`` is ``None`` when infinite)."""
        return {
            "class_name": self.class_name,
            "current": self.current,
            "target": self.target,
            "deficit": self.deficit,
            "is_tail": self.is_tail,
            "rate_per_hour": self.rate_per_hour,
            "estimated_hours": self.estimated_hours if math.isfinite(self.estimated_hours) else None,
            "frames_needed": self.frames_needed,
        }


def _per_class(value: float | Mapping[str, float], name: str, what: str, default: float) -> float:
    v = float(value.get(name, default)) if isinstance(value, Mapping) else float(value)
    if not math.isfinite(v) or v < 0:
        raise SimGapInputError(f"{what} for class {name!r} must be a finite number >= 0, got {v}")
    return v


def compute_synthetic_generation_budget(
    class_counts: Mapping[str, int | float],
    target_per_class: int,
    *,
    percentile: float = 20.0,
    tail_classes: Iterable[str] | None = None,
    include_all: bool = False,
    frames_per_hour: float = 3600.0,
    instances_per_frame: float | Mapping[str, float] = 1.0,
    acceptance_rate: float | Mapping[str, float] = 1.0,
) -> dict[str, BudgetRow]:
    """Synthetic instances still needed per class to reach ``target_per_class``, and how long that takes.

    Args:
        class_counts: class name -> current instance count (real reference).
        target_per_class: target instance count per class (>= 0).
        percentile: tail percentile used when ``tail_classes`` is not given.
        tail_classes: explicit tail classes (default: :func:`identify_tail_classes` of ``class_counts``).
        include_all: budget every class, not only tail classes.
        frames_per_hour: frames the generator renders per hour (> 0).
        instances_per_frame: instances of a class a focused frame yields (scalar or per class; default 1).
        acceptance_rate: share of rendered instances the gate accepts (scalar or per class; default 1).

    Returns:
        class name -> :class:`BudgetRow`, largest deficit first (ties by name).

    Raises:
        SimGapInputError: invalid counts, target, rates, or tail classes absent from ``class_counts``.
    """
    counts = _check_counts(class_counts)
    if int(target_per_class) != target_per_class or target_per_class < 0:
        raise SimGapInputError(f"target_per_class must be an integer >= 0, got {target_per_class!r}")
    if not (math.isfinite(float(frames_per_hour)) and float(frames_per_hour) > 0):
        raise SimGapInputError(f"frames_per_hour must be > 0, got {frames_per_hour!r}")
    tails = identify_tail_classes(counts, percentile) if tail_classes is None else [str(t) for t in tail_classes]
    missing = sorted(set(tails) - set(counts))
    if missing:
        raise SimGapInputError(f"tail classes {missing} are not in class_counts")
    names = list(counts) if include_all else tails
    rows: dict[str, BudgetRow] = {}
    for name in names:
        current = int(round(counts[name]))
        deficit = max(0, int(target_per_class) - current)
        per_frame = _per_class(instances_per_frame, name, "instances_per_frame", 1.0)
        accept = _per_class(acceptance_rate, name, "acceptance_rate", 1.0)
        if accept > 1.0:
            raise SimGapInputError(f"acceptance_rate for class {name!r} must lie in [0, 1], got {accept}")
        yield_per_frame = per_frame * accept
        rate = float(frames_per_hour) * yield_per_frame
        if deficit == 0:
            hours, frames = 0.0, 0
        elif rate > 0:
            hours, frames = deficit / rate, int(math.ceil(deficit / yield_per_frame))
        else:
            hours, frames = math.inf, None
        rows[name] = BudgetRow(name, current, int(target_per_class), deficit, name in tails, rate, hours, frames)
    return dict(sorted(rows.items(), key=lambda kv: (-kv[1].deficit, kv[0])))
