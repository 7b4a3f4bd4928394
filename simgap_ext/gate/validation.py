"""Validate the gate on real scans: real-vs-real acceptance and detection of known perturbations.

For up to ``max_folds`` held-out real frames (evenly spaced), a bank is built from all *other* frames
(leave one out) and the held-out frame is gated unchanged (it should be accepted) and after each perturbation
of :data:`PERTURBATIONS` (each should be rejected). :func:`validate_gate` returns one :class:`ValidationRow`
per case with the acceptance rate and, per gate component, how often that component failed (score below
``g_threshold``, in the scene or in any class). ``benchmarks/validate_real.py`` and ``simgap validate`` print
it; the numbers in docs/gate.md come from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SimGapInputError
from .bank import ReferenceBank, sensor_geometry
from .config import GateConfig
from .frame_stats import ring_ids
from .gate import FrameGate

__all__ = ["PERTURBATIONS", "ValidationRow", "validate_gate", "perturb", "format_table", "write_validation_html"]

log = logging.getLogger(__name__)

#: Class a relabelled class is turned into (the issue's example: every car point labelled vegetation).
RELABEL_TARGET = "vegetation"
# A class must have this many points in a frame to be relabelled / removed (else the case is not applicable).
_MIN_CLASS_POINTS = 100


def _arrays(frame: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    info = frame["info"]
    names = {int(k): (v["class"] if isinstance(v, Mapping) else str(v)) for k, v in info["idToLabels"].items()}
    return (
        np.asarray(frame["data"], np.float32),
        np.asarray(info["pointSemantic"]).astype(np.uint32),
        np.asarray(info["pointInstance"]).astype(np.uint32),
        names,
    )


def _rebuild(frame: Mapping[str, Any], pts: np.ndarray, sem: np.ndarray, inst: np.ndarray, names) -> dict:
    from ..frame import make_frame

    meta = {k: frame[k] for k in ("frame_id", "seed", "sensor", "attempt") if k in frame}
    return make_frame(pts.astype(np.float32), sem, inst, names, **meta)


def _source_class(names: Mapping[int, str], sem: np.ndarray) -> str | None:
    """The most populous *thing* class of the frame (>= _MIN_CLASS_POINTS points), else None."""
    from ..data.taxonomy import default_taxonomy

    tax = default_taxonomy()
    best, best_n = None, _MIN_CLASS_POINTS - 1
    for sid, name in names.items():
        kind = tax.get(name).kind if name in tax else "stuff"
        n = int((sem == sid).sum())
        if kind == "thing" and n > best_n and name != RELABEL_TARGET:
            best, best_n = name, n
    return best


def perturb(frame: Mapping[str, Any], kind: str, strength: float, rng: np.random.Generator) -> dict | None:
    """One perturbation of a real frame (``None`` when it does not apply, e.g. no class to relabel).

    Args:
        frame: a validated frame in the sensor frame.
        kind: ``jitter`` (Gaussian, sigma metres per axis), ``drop`` (random ray drop, share), ``subsample``
            (keep every ``strength``-th point), ``shift`` (rigid translation along x, metres), ``rings`` (remove
            every other scan ring), ``relabel`` (the most populous thing class labelled as vegetation),
            ``remove`` (that class's points deleted), ``relabel_scene`` / ``remove_scene`` (the same after the
            frame's classes are rolled up onto the taxonomy's scene vocabulary, as the gate's bank does).
        strength: the perturbation's parameter (ignored by ``rings``, ``relabel``, ``remove``).
        rng: random generator.
    """
    pts, sem, inst, names = _arrays(frame)
    n = pts.shape[0]
    if kind == "jitter":
        return _rebuild(frame, pts + rng.normal(0.0, strength, pts.shape), sem, inst, names)
    if kind == "drop":
        keep = rng.random(n) >= strength
        return _rebuild(frame, pts[keep], sem[keep], inst[keep], names)
    if kind == "subsample":
        keep = np.zeros(n, bool)
        keep[:: int(strength)] = True
        return _rebuild(frame, pts[keep], sem[keep], inst[keep], names)
    if kind == "shift":
        return _rebuild(frame, pts + np.array([strength, 0.0, 0.0], np.float32), sem, inst, names)
    if kind == "rings":
        beams, _ = sensor_geometry(str(frame.get("sensor", "unknown")))
        keep = ring_ids(pts, beams) % 2 == 0
        return _rebuild(frame, pts[keep], sem[keep], inst[keep], names)
    if kind in ("relabel_scene", "remove_scene"):
        from ..data.taxonomy import roll_up_frame

        return perturb(roll_up_frame(frame), kind.removesuffix("_scene"), strength, rng)
    if kind in ("relabel", "remove"):
        src = _source_class(names, sem)
        if src is None:
            return None
        src_ids = [sid for sid, c in names.items() if c == src]
        mask = np.isin(sem, src_ids)
        if kind == "remove":
            keep = ~mask
            return _rebuild(frame, pts[keep], sem[keep], inst[keep], {k: v for k, v in names.items() if v != src})
        target = [sid for sid, c in names.items() if c == RELABEL_TARGET]
        tid = target[0] if target else max(names) + 1
        new_names = {k: v for k, v in names.items() if v != src}
        new_names[tid] = RELABEL_TARGET
        sem = sem.copy()
        sem[mask] = tid
        inst = inst.copy()
        inst[mask] = 0
        return _rebuild(frame, pts, sem, inst, new_names)
    raise SimGapInputError(f"unknown perturbation {kind!r}")


#: (label, kind, strength, must be rejected by the issue's target): the validation cases.
PERTURBATIONS: tuple[tuple[str, str, float, bool], ...] = (
    ("jitter 0.02 m", "jitter", 0.02, False),
    ("jitter 0.05 m", "jitter", 0.05, False),
    ("jitter 0.1 m", "jitter", 0.1, True),
    ("jitter 0.2 m", "jitter", 0.2, True),
    ("ray drop 20 %", "drop", 0.2, False),
    ("ray drop 50 %", "drop", 0.5, True),
    ("subsample 2x", "subsample", 2, False),
    ("subsample 4x", "subsample", 4, True),
    ("subsample 10x", "subsample", 10, True),
    ("shift 0.5 m", "shift", 0.5, True),
    ("shift 2 m", "shift", 2.0, True),
    ("every other ring", "rings", 0, True),
    ("class relabelled", "relabel", 0, True),
    ("class removed", "remove", 0, False),
    # The same at the gate's class level (the taxonomy's scene vocabulary the bank rolls real classes up to): every
    # vehicle point, car and truck alike, rather than one fine class of it while the others stay vehicle.
    ("scene class relabelled", "relabel_scene", 0, True),
    ("scene class removed", "remove_scene", 0, False),
)


@dataclass
class ValidationRow:
    """One case of the validation table.

    Attributes:
        case: ``"real (leave one out)"`` or a perturbation label.
        target_rejected: the issue's target for this case (``False`` for real frames and weak perturbations).
        n: frames the case applied to.
        accepted: frames accepted.
        component_fail: component -> frames where that component scored below ``g_threshold`` (``scene.X`` or
            ``class.X`` for any class).
        reasons: a few example rejection reasons.
    """

    case: str
    target_rejected: bool
    n: int = 0
    accepted: int = 0
    component_fail: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def accept_rate(self) -> float:
        """Share of frames accepted (NaN when none applied)."""
        return self.accepted / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "case": self.case,
            "target_rejected": self.target_rejected,
            "n": self.n,
            "accepted": self.accepted,
            "accept_rate": None if not self.n else self.accept_rate,
            "component_fail": dict(self.component_fail),
            "reasons": list(self.reasons),
        }


def _record(row: ValidationRow, decision: Any, threshold: float) -> None:
    row.n += 1
    row.accepted += int(decision.accepted)
    failed: set[str] = set()
    for name, score in decision.scene_components.items():
        if score < threshold:
            failed.add(f"scene.{name}")
    for cd in decision.per_class.values():
        for name, score in cd.components.items():
            if score < threshold:
                failed.add(f"class.{name}")
    for f in failed:
        row.component_fail[f] = row.component_fail.get(f, 0) + 1
    if not decision.accepted and len(row.reasons) < 3:
        row.reasons.append(decision.reasons[0] if decision.reasons else decision.status)


def validate_gate(
    frames: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    sensor: str | None = None,
    config: GateConfig | None = None,
    max_folds: int = 8,
    perturbations: Iterable[tuple[str, str, float, bool]] = PERTURBATIONS,
    device: str | None = "cpu",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[ValidationRow]:
    """Leave-one-out real-vs-real acceptance and perturbation detection (see module docstring).

    Args:
        frames: ``(name, frame)`` real frames of one sensor, in the sensor frame (at least 3: a bank needs 2).
        sensor: sensor profile (default: the frames' ``sensor``).
        config: gate configuration (default: the shipped ``config/gate.toml``).
        max_folds: at most this many held-out frames, evenly spaced.
        perturbations: the cases (default :data:`PERTURBATIONS`).
        device: Warp device for the Chamfer distances.
        seed: seed of the random perturbations.
        progress: called with (folds done, folds) after each fold.

    Returns:
        One row for the real frames, then one per perturbation.

    Raises:
        SimGapInputError: fewer than 3 frames or ``max_folds < 1``.
    """
    from .config import load_gate_config

    if len(frames) < 3:
        raise SimGapInputError(
            f"validation needs at least 3 real frames (a bank of 2 plus 1 held out), got {len(frames)}"
        )
    if max_folds < 1:
        raise SimGapInputError(f"max_folds must be >= 1, got {max_folds}")
    cfg = config or load_gate_config()
    cases = list(perturbations)
    rows = [ValidationRow("real (leave one out)", False)] + [ValidationRow(c[0], c[3]) for c in cases]
    n = len(frames)
    held = np.unique(np.linspace(0, n - 1, min(max_folds, n)).round().astype(int))
    rng = np.random.default_rng(seed)
    for k, i in enumerate(held):
        rest = [frames[j] for j in range(n) if j != i]
        bank = ReferenceBank.build(rest, sensor=sensor, config=cfg, device=device, seed=seed)
        gate = FrameGate(bank, cfg, device=device, quarantine=False)
        name, frame = frames[i]
        _record(rows[0], gate.evaluate(frame, update_quarantine=False), cfg.g_threshold)
        for row, (_, kind, strength, _) in zip(rows[1:], cases, strict=True):
            pf = perturb(frame, kind, strength, rng)
            if pf is not None:
                _record(row, gate.evaluate(pf, update_quarantine=False), cfg.g_threshold)
        log.info("validation fold %d/%d (%s) done", k + 1, len(held), name)
        if progress is not None:
            progress(k + 1, len(held))
    return rows


def format_table(rows: Sequence[ValidationRow], title: str = "") -> str:
    """Markdown table: case, frames, accepted %, target, met, and per component the failure share."""
    comps = sorted({c for r in rows for c in r.component_fail})
    head = ["case", "n", "accepted", "target", "met"] + comps
    lines = ([f"**{title}**", ""] if title else []) + ["| " + " | ".join(head) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        if not r.n:
            lines.append("| " + " | ".join([r.case, "0", "n/a", "", ""] + [""] * len(comps)) + " |")
            continue
        acc = r.accept_rate
        if r.case.startswith("real"):
            target, met = ">= 95 % accepted", acc >= 0.95
        elif r.target_rejected:
            target, met = "rejected", r.accepted == 0
        else:
            target, met = "(report)", None
        cells = [r.case, str(r.n), f"{100 * acc:.0f} %", target, "" if met is None else ("yes" if met else "NO")]
        cells += [f"{100 * r.component_fail.get(c, 0) / r.n:.0f}" for c in comps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_validation_html(path: Any, results: Sequence[tuple[str, Sequence[ValidationRow]]]) -> Any:
    """Self-contained HTML page: per dataset the acceptance rate of every case as a bar chart and the table.

    Args:
        path: the ``.html`` file to write (atomically).
        results: ``(dataset title, rows)`` per dataset.

    Returns:
        The path written.
    """
    import html

    from ..data import atomic_write_bytes
    from ..plots import PAGE_CSS, png_data_uri, use_agg

    use_agg()
    import matplotlib.pyplot as plt

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>SimGap validation</title>"]
    parts.append(f"<style>{PAGE_CSS} td, th {{ padding: 2px 8px; }}</style></head><body>")
    parts.append("<h1>Gate validation on real scans</h1>")
    parts.append(
        "<p>Accepted share per case (leave one real scan out). Real scans should be accepted (green, target "
        "&ge; 95 %); perturbed scans rejected (red bars should be 0 where the target is 'rejected').</p>"
    )
    for title, rows in results:
        shown = [r for r in rows if r.n]
        fig, ax = plt.subplots(figsize=(8, 0.32 * len(shown) + 1))
        colours = ["tab:green" if r.case.startswith("real") else ("tab:red" if r.target_rejected else "tab:gray")
                   for r in shown]  # fmt: skip
        ax.barh([r.case for r in shown][::-1], [100 * r.accept_rate for r in shown][::-1], color=colours[::-1])
        ax.set_xlim(0, 100)
        ax.set_xlabel("accepted (%)")
        ax.axvline(95, color="k", lw=0.5, ls="--")
        fig.tight_layout()
        parts.append(f"<h2>{html.escape(title)}</h2><img src='{png_data_uri(fig)}'>")
        plt.close(fig)
        comps = sorted({c for r in rows for c in r.component_fail})
        parts.append("<table><tr><th>case</th><th>n</th><th>accepted</th>")
        parts += [f"<th>{html.escape(c)} fails</th>" for c in comps]
        parts.append("<th>example reason</th></tr>")
        for r in rows:
            cells = [html.escape(r.case), str(r.n), "n/a" if not r.n else f"{100 * r.accept_rate:.0f} %"]
            cells += [f"{100 * r.component_fail.get(c, 0) / r.n:.0f} %" if r.n else "" for c in comps]
            cells.append(html.escape(r.reasons[0]) if r.reasons else "")
            parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
