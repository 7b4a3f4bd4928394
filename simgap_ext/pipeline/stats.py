"""The one observable per-class acceptance model (what the CLI table, the HTML report and the Kit panel read).

Every generation attempt is recorded once, either live from the gate's decision (:meth:`AcceptanceStats.record`)
or from its manifest row (:meth:`AcceptanceStats.record_row`, :meth:`AcceptanceStats.from_manifest`); both paths
go through the same update so that a resumed run, ``simgap report`` and the live table show the same numbers.

Per class (counted once per attempt whose frame contains the class):

- ``rerandomized``: the attempt was rejected and sent back for another one;
- ``held_back``: the class was in semantic quarantine in a final attempt that was not accepted;
- ``accepted`` / ``rejected``: the final attempt's frame decision otherwise;
- ``acceptance_rate`` = accepted / all attempts containing the class (re-randomized ones included, so it
  measures how much rendering an accepted sample of the class costs);
- ``mean_g``: mean of the class's G over every attempt that scored it; ``js``/``quarantined``: latest values.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.manifest import DECISIONS, read_manifest

__all__ = [
    "GATE_STATUS_TO_DECISION",
    "ClassRow",
    "TimelinePoint",
    "AcceptanceStats",
    "decision_label",
    "finite_or_none",
    "reason_kind",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassRow:
    """A snapshot of one class's counters (see the module docstring for their meaning)."""

    class_name: str
    accepted: int
    rejected: int
    rerandomized: int
    held_back: int
    acceptance_rate: float
    mean_g: float | None
    js: float | None
    quarantined: bool
    n_g: int

    @property
    def attempts(self) -> int:
        """Attempts whose frame contained the class."""
        return self.accepted + self.rejected + self.rerandomized + self.held_back


@dataclass(frozen=True)
class TimelinePoint:
    """One class observation in attempt order (drives the report's JS/quarantine timeline).

    Attributes:
        step: 0-based attempt number within the run (manifest row order).
        frame_id: the scheduled frame the attempt belongs to.
        class_name: the class.
        js: the class's JS at that attempt (None before the gate's window filled).
        quarantined: the class was in quarantine at that attempt.
    """

    step: int
    frame_id: int | None
    class_name: str
    js: float | None
    quarantined: bool


@dataclass
class _Counter:
    accepted: int = 0
    rejected: int = 0
    rerandomized: int = 0
    held_back: int = 0
    accepted_instances: int = 0
    g_sum: float = 0.0
    g_values: list[float] = field(default_factory=list)
    js: float | None = None
    quarantined: bool = False


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when finite, else ``None`` (manifest rows store NaN scores as null; live counts must agree)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


#: The one outcome vocabulary: gate status (:attr:`GateDecision.status`) -> manifest decision (``DECISIONS``), which
#: the stats, the CLI table, the report, the writer sink's counts and the Kit panel all use. A rejected attempt that
#: is sent back for another render becomes ``rerandomized`` whatever its status.
GATE_STATUS_TO_DECISION = {
    "accepted": "accepted",
    "quarantined": "held_back",
    "rejected": "rejected",
    "invalid": "rejected",
}


def decision_label(decision: Any, *, rerandomized: bool = False) -> str:
    """The manifest decision of one gate verdict (:data:`GATE_STATUS_TO_DECISION`).

    Args:
        decision: a :class:`~simgap_ext.gate.GateDecision` (``accepted``, ``decision`` or ``quarantined_classes``).
        rerandomized: the attempt is being sent back for another one.

    Returns:
        One of :data:`~simgap_ext.data.manifest.DECISIONS`.
    """
    if decision.accepted:
        return "accepted"
    if rerandomized:
        return "rerandomized"
    return GATE_STATUS_TO_DECISION.get(str(getattr(decision, "decision", "rejected")), "rejected")


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# The margin a gate reason reports: "... vs d_max 0.3 (1.23x)".
_MARGIN = re.compile(r"\((\d+(?:\.\d+)?)x\)")


def reason_kind(reason: str) -> str:
    """A gate reason with its numbers replaced by ``#``, so that reasons of one kind tally together.

    ``"class cyclist: G=0.612 < 0.75; worst: count 2.66 vs d_max 10.5"`` ->
    ``"class cyclist: G=# < #; worst: count # vs d_max #"``.
    """
    return _NUMBER.sub("#", str(reason))


class AcceptanceStats:
    """Thread-safe, observable per-class acceptance counters.

    Subscribers (``callback(stats)``) are called after every recorded attempt, outside the lock, from the
    recording thread; a UI must marshal to its own thread. A failing callback is logged, never propagated.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._classes: dict[str, _Counter] = {}
        self._frames = dict.fromkeys(DECISIONS, 0)
        self._timeline: list[TimelinePoint] = []
        self._reasons: Counter[str] = Counter()
        # reason kind -> the margins (distance / d_max) its reasons reported, for the report's reasons table
        self._margins: dict[str, list[float]] = {}
        self._scene_g: list[float] = []
        self._steps = 0
        self._subscribers: list[Callable[[AcceptanceStats], None]] = []

    # ------------------------------------------------------------------ recording
    def record(self, decision: Any, *, rerandomized: bool = False, frame_id: int | None = None) -> str:
        """Record one attempt from the gate's :class:`~simgap_ext.gate.GateDecision`.

        Args:
            decision: the gate's verdict (``per_class`` with ``g``, ``js``, ``quarantined`` per class).
            rerandomized: the attempt was rejected and is being retried.
            frame_id: the scheduled frame (default: ``decision.frame_id``).

        Returns:
            The decision label recorded (``accepted``/``rejected``/``rerandomized``/``held_back``).
        """
        label = decision_label(decision, rerandomized=rerandomized)
        per_class = {
            name: (finite_or_none(cd.g), finite_or_none(cd.js), bool(cd.quarantined), int(cd.n_instances))
            for name, cd in sorted(getattr(decision, "per_class", {}).items())
        }
        fid = frame_id if frame_id is not None else getattr(decision, "frame_id", None)
        scene_g = finite_or_none(decision.scene_g) if getattr(decision, "sane", True) else None
        self._apply(label, per_class, fid, getattr(decision, "reasons", ()), scene_g)
        return label

    def record_row(self, row: Mapping[str, Any]) -> str:
        """Record one attempt from its manifest row (same numbers as :meth:`record` of the same decision)."""
        label = str(row["decision"])
        if label not in DECISIONS:
            raise ValueError(f"manifest row decision {label!r} is not one of {DECISIONS}")
        quarantined = set(row.get("quarantined") or ())
        g = row.get("g") or {}
        js = row.get("js") or {}
        instances = row.get("class_instances") or {}
        names = sorted(set(row.get("class_points") or {}) | set(g) | set(js))
        per_class = {n: (g.get(n), js.get(n), n in quarantined, int(instances.get(n, 0))) for n in names}
        self._apply(label, per_class, row.get("frame_id"), row.get("reasons") or (), row.get("scene_g"))
        return label

    @classmethod
    def from_manifest(cls, path: str | Path, *, domain: str | None = "synthetic") -> AcceptanceStats:
        """Rebuild the counters from a manifest (rows of other domains are skipped)."""
        stats = cls()
        for row in read_manifest(path):
            if domain is None or row["domain"] == domain:
                stats.record_row(row)
        return stats

    def _apply(
        self,
        label: str,
        per_class: Mapping[str, tuple[Any, Any, bool, int]],
        frame_id: int | None,
        reasons: Iterable[str] = (),
        scene_g: float | None = None,
    ) -> None:
        with self._lock:
            step = self._steps
            self._steps += 1
            self._frames[label] += 1
            self._reasons.update(reason_kind(r) for r in reasons)
            for r in reasons:
                m = _MARGIN.search(str(r))
                if m:
                    self._margins.setdefault(reason_kind(r), []).append(float(m.group(1)))
            if scene_g is not None:
                self._scene_g.append(float(scene_g))
            for name, (g, js, quarantined, n_instances) in per_class.items():
                c = self._classes.setdefault(name, _Counter())
                if label == "rerandomized":
                    c.rerandomized += 1
                elif quarantined and label != "accepted":
                    c.held_back += 1
                elif label == "accepted":
                    c.accepted += 1
                    c.accepted_instances += n_instances
                else:
                    c.rejected += 1
                if g is not None:
                    c.g_sum += float(g)
                    c.g_values.append(float(g))
                c.js = None if js is None else float(js)
                c.quarantined = bool(quarantined)
                self._timeline.append(TimelinePoint(step, frame_id, name, c.js, c.quarantined))
            subscribers = list(self._subscribers)
        for cb in subscribers:
            try:
                cb(self)
            except Exception:  # a broken view must not stop generation
                _log.exception("AcceptanceStats subscriber %r failed", cb)

    # ------------------------------------------------------------------ observing
    def subscribe(self, callback: Callable[[AcceptanceStats], None]) -> Callable[[], None]:
        """Call ``callback(self)`` after every recorded attempt; returns a callable that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------------ reading
    def rows(self) -> list[ClassRow]:
        """One :class:`ClassRow` per class seen, sorted by class name."""
        with self._lock:
            out = []
            for name in sorted(self._classes):
                c = self._classes[name]
                attempts = c.accepted + c.rejected + c.rerandomized + c.held_back
                n_g = len(c.g_values)
                out.append(
                    ClassRow(
                        class_name=name,
                        accepted=c.accepted,
                        rejected=c.rejected,
                        rerandomized=c.rerandomized,
                        held_back=c.held_back,
                        acceptance_rate=c.accepted / attempts if attempts else 0.0,
                        mean_g=c.g_sum / n_g if n_g else None,
                        js=c.js,
                        quarantined=c.quarantined,
                        n_g=n_g,
                    )
                )
            return out

    def row(self, class_name: str) -> ClassRow | None:
        """The row of one class, or None when it was never seen."""
        return next((r for r in self.rows() if r.class_name == class_name), None)

    def accepted_counts(self) -> dict[str, int]:
        """Class name -> accepted samples so far (what a generation budget's deficit is measured against)."""
        with self._lock:
            return {n: c.accepted for n, c in sorted(self._classes.items())}

    def accepted_instance_counts(self) -> dict[str, int]:
        """Class name -> instances in accepted samples so far (generation budgets count instances)."""
        with self._lock:
            return {n: c.accepted_instances for n, c in sorted(self._classes.items())}

    def g_values(self, class_name: str) -> list[float]:
        """Every G recorded for a class, in attempt order."""
        with self._lock:
            c = self._classes.get(class_name)
            return list(c.g_values) if c else []

    def scene_g_values(self) -> list[float]:
        """Every scored attempt's scene-level G, in attempt order."""
        with self._lock:
            return list(self._scene_g)

    def top_reasons(self, n: int = 5) -> list[tuple[str, int]]:
        """The ``n`` most frequent reasons over all attempts, numbers replaced by ``#`` (see :func:`reason_kind`)."""
        with self._lock:
            return self._reasons.most_common(n)

    def reason_margins(self, kind: str) -> tuple[float, float, float] | None:
        """(min, median, max) of the margins (distance / d_max, the ``(1.23x)`` of a reason) reported by the
        reasons of one kind, or None when they give none."""
        with self._lock:
            vals = sorted(self._margins.get(kind, ()))
        if not vals:
            return None
        mid = len(vals) // 2
        median = vals[mid] if len(vals) % 2 else 0.5 * (vals[mid - 1] + vals[mid])
        return vals[0], median, vals[-1]

    def timeline(self) -> list[TimelinePoint]:
        """Every (attempt, class) observation in order."""
        with self._lock:
            return list(self._timeline)

    @property
    def frame_counts(self) -> dict[str, int]:
        """Attempts per decision label (frame level), plus ``attempts``."""
        with self._lock:
            out = dict(self._frames)
            out["attempts"] = self._steps
            return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot: ``frames`` (per decision) and ``classes`` (one dict per :class:`ClassRow`)."""
        return {
            "frames": self.frame_counts,
            "classes": [asdict(r) for r in self.rows()],
            "top_reasons": [{"reason": k, "count": c} for k, c in self.top_reasons(10)],
        }
