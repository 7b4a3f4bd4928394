"""The gate's per-frame decision objects (what the pipeline turns into manifest rows and the panel shows).

Every float is a plain Python ``float`` (or ``None`` when a component could not be computed) so that
:meth:`GateDecision.to_dict` is JSON-safe without a custom encoder; :meth:`GateDecision.from_dict` reads that dict
back. A manifest row is a different, flatter record built from a decision by
:func:`simgap_ext.pipeline.attempt.attempt_row` (schema ``docs/manifest.schema.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClassDecision", "GateDecision"]

_STATUSES = ("", "accepted", "rejected", "quarantined", "invalid")


def _f(value: float | None) -> float | None:
    """A JSON-safe float: ``None`` stays ``None``, NaN/inf become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class ClassDecision:
    """The gate's verdict on one class of one frame.

    Attributes:
        name: class name.
        n_points: points of this class in the frame.
        n_instances: instance crops of this class (instance id != 0), scored or not.
        g: geometric score in [0, 1] (mean over scored crops), ``None`` when nothing was scored
            (background class, all crops below ``min_points``, no reference).
        js: the class's current semantic JS (bits) over the quarantine window, ``None`` before enough samples.
        passed: the class passed every test it was given.
        quarantined: the class is in semantic quarantine, so the frame is held back.
        reasons: human-readable reasons for a failure or for skipping a test.
        components: per-component scores in [0, 1] (``chamfer``, ``count``, ``roughness``, ``density``, ``share``,
            ``height``, ``plausibility``, ``foreign``; ``joint``: the joint deviation test, failing below 0.5 and
            not part of G; ``hidden``: 0 when the class holds a hidden one).
        n_scored: instance crops actually scored (>= ``min_points``).
        evidence: component -> (distance, d_max): the margins behind each score.
    """

    name: str
    n_points: int
    n_instances: int
    g: float | None = None
    js: float | None = None
    passed: bool = True
    quarantined: bool = False
    reasons: list[str] = field(default_factory=list)
    components: dict[str, float] = field(default_factory=dict)
    n_scored: int = 0
    evidence: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "name": self.name,
            "n_points": int(self.n_points),
            "n_instances": int(self.n_instances),
            "n_scored": int(self.n_scored),
            "g": _f(self.g),
            "js": _f(self.js),
            "passed": bool(self.passed),
            "quarantined": bool(self.quarantined),
            "reasons": [str(r) for r in self.reasons],
            "components": {k: _f(v) for k, v in self.components.items()},
            "evidence": {k: [_f(d), _f(m)] for k, (d, m) in self.evidence.items()},
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ClassDecision:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(row["name"]),
            n_points=int(row["n_points"]),
            n_instances=int(row["n_instances"]),
            g=row.get("g"),
            js=row.get("js"),
            passed=bool(row.get("passed", True)),
            quarantined=bool(row.get("quarantined", False)),
            reasons=list(row.get("reasons", [])),
            components={k: v for k, v in (row.get("components") or {}).items() if v is not None},
            n_scored=int(row.get("n_scored", 0)),
            evidence={k: (float(v[0]), float(v[1])) for k, v in (row.get("evidence") or {}).items() if None not in v},
        )


@dataclass
class GateDecision:
    """The gate's verdict on one frame.

    Attributes:
        accepted: the frame may be exported.
        per_class: class name -> :class:`ClassDecision`, for every class with points in the frame.
        scene_g: scene-level geometric score in [0, 1] (NaN-free; 0.0 when the frame was not scored).
        failing_classes: classes whose own tests failed (geometry, missing reference, quarantine), sorted.
        reasons: human-readable reasons for the decision (empty when accepted).
        quarantined_classes: classes of this frame held back by the semantic quarantine.
        scene_components: per-component scene scores in [0, 1] (``range``, ``beams``, ``roughness``,
            ``composition``).
        scene_evidence: scene component -> (distance, d_max).
        sane: False when the frame failed the sanity checks (empty, missing instance ids, duplicates) and
            was therefore not scored at all.
        frame_id, seed, attempt, sensor: provenance copied from the frame.
        status: ``"accepted"``; ``"quarantined"`` (geometrically fine, held back only by the semantic
            quarantine); ``"invalid"`` (failed the sanity checks, not scored); ``"rejected"`` (anything else).
            Derived from ``accepted`` when left empty.
    """

    accepted: bool
    per_class: dict[str, ClassDecision] = field(default_factory=dict)
    scene_g: float = 0.0
    failing_classes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    quarantined_classes: list[str] = field(default_factory=list)
    scene_components: dict[str, float] = field(default_factory=dict)
    scene_evidence: dict[str, tuple[float, float]] = field(default_factory=dict)
    sane: bool = True
    frame_id: int = 0
    seed: int = 0
    attempt: int = 0
    sensor: str = "unknown"
    status: str = ""

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"GateDecision.status must be one of {_STATUSES}, got {self.status!r}")
        if self.status == "":
            self.status = "accepted" if self.accepted else "rejected"
        if self.accepted != (self.status == "accepted"):
            raise ValueError(f"GateDecision: accepted={self.accepted} contradicts status={self.status!r}")

    @property
    def decision(self) -> str:
        """Alias of :attr:`status`: ``"accepted"``, ``"rejected"``, ``"quarantined"`` or ``"invalid"``."""
        return self.status

    def class_g(self) -> dict[str, float]:
        """Class name -> G for the classes that were scored."""
        return {n: float(c.g) for n, c in self.per_class.items() if c.g is not None}

    def class_js(self) -> dict[str, float]:
        """Class name -> current JS for the classes that have one."""
        return {n: float(c.js) for n, c in self.per_class.items() if c.js is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the whole decision (per-class components included); not a manifest row."""
        return {
            "accepted": bool(self.accepted),
            "decision": self.status,
            "sane": bool(self.sane),
            "scene_g": _f(self.scene_g),
            "scene_components": {k: _f(v) for k, v in self.scene_components.items()},
            "scene_evidence": {k: [_f(d), _f(m)] for k, (d, m) in self.scene_evidence.items()},
            "failing_classes": list(self.failing_classes),
            "quarantined_classes": list(self.quarantined_classes),
            "reasons": [str(r) for r in self.reasons],
            "per_class": {n: c.to_dict() for n, c in sorted(self.per_class.items())},
            "frame_id": int(self.frame_id),
            "seed": int(self.seed),
            "attempt": int(self.attempt),
            "sensor": str(self.sensor),
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> GateDecision:
        """Inverse of :meth:`to_dict`."""
        return cls(
            accepted=bool(row["accepted"]),
            per_class={n: ClassDecision.from_dict(c) for n, c in (row.get("per_class") or {}).items()},
            scene_g=float(row.get("scene_g") or 0.0),
            failing_classes=list(row.get("failing_classes", [])),
            reasons=list(row.get("reasons", [])),
            quarantined_classes=list(row.get("quarantined_classes", [])),
            scene_components={k: v for k, v in (row.get("scene_components") or {}).items() if v is not None},
            scene_evidence={
                k: (float(v[0]), float(v[1])) for k, v in (row.get("scene_evidence") or {}).items() if None not in v
            },
            sane=bool(row.get("sane", True)),
            frame_id=int(row.get("frame_id", 0)),
            seed=int(row.get("seed", 0)),
            attempt=int(row.get("attempt", 0)),
            sensor=str(row.get("sensor", "unknown")),
            status=str(row.get("decision", "")),
        )
