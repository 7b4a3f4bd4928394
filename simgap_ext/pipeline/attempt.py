"""One attempt's outcome: whether to re-randomize, its decision label and its manifest row.

Shared by the pull path (:class:`~simgap_ext.pipeline.GenerationRunner`) and the push path (the Replicator writer's
:class:`~simgap_ext.replicator.sink.GatedExportSink`) so that both record an attempt identically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.manifest import ManifestWriter, make_row
from .stats import AcceptanceStats, decision_label, finite_or_none

__all__ = ["RetryPlan", "plan_retry", "attempt_row", "AttemptRecorder"]


@dataclass(frozen=True)
class RetryPlan:
    """What follows a gated attempt.

    Attributes:
        retry: re-render the scene with a new seed and the same focus.
        label: manifest decision (``accepted``, ``rejected``, ``rerandomized``, ``held_back``).
        reasons: the gate's reasons plus the re-randomization / budget note.
    """

    retry: bool
    label: str
    reasons: list[str]


def plan_retry(decision: Any, *, tail_classes: Sequence[str], attempt: int, max_retries: int) -> RetryPlan:
    """Decide whether a gated attempt is re-randomized (DESIGN.md, "Gate, re-randomization, export").

    A rejected scene goes back to the scene source (new seed, same focus) when a tail class is among its failing
    classes, or when a class of it is in semantic quarantine ("its scenes re-rendered" until it recovers), as long
    as re-randomizations are left. Unscored frames (``decision.sane`` false: a broken capture is not a scene
    problem) are never retried.

    Args:
        decision: a :class:`~simgap_ext.gate.GateDecision`.
        tail_classes: the run's tail classes.
        attempt: 0 for the first render, k for the k-th re-randomization.
        max_retries: re-randomizations allowed per scene (>= 0).

    Returns:
        The :class:`RetryPlan`.
    """
    failing_tail = sorted(set(decision.failing_classes) & set(tail_classes))
    quarantined = sorted(set(getattr(decision, "quarantined_classes", ()) or ()) - set(failing_tail))
    causes = []
    if failing_tail:
        causes.append(f"tail class(es) {', '.join(failing_tail)} failed")
    if quarantined:
        causes.append(f"class(es) {', '.join(quarantined)} in quarantine")
    wanted = (not decision.accepted) and bool(getattr(decision, "sane", True)) and bool(causes)
    retry = wanted and attempt < max_retries
    reasons = list(decision.reasons)
    if retry:
        reasons.append(f"re-randomized: {'; '.join(causes)} (re-randomization {attempt + 1} of {max_retries})")
    elif wanted:
        reasons.append(f"retry budget spent ({max_retries} re-randomizations)")
    return RetryPlan(retry=retry, label=decision_label(decision, rerandomized=retry), reasons=reasons)


def attempt_row(
    decision: Any,
    plan: RetryPlan,
    *,
    sensor: str,
    seed: int,
    attempt: int,
    frame_id: int,
    focus_classes: Sequence[str],
    path: str | None = None,
    label_path: str | None = None,
    index: int | None = None,
    name: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The manifest row of one attempt (schema: ``docs/manifest.schema.json``).

    Args:
        decision: the attempt's :class:`~simgap_ext.gate.GateDecision`.
        plan: its :class:`RetryPlan` (label and reasons).
        sensor, seed, attempt, frame_id, focus_classes: provenance of the render.
        path, label_path, index: the exported scan (accepted attempts only), relative to the manifest.
        name: optional source name (e.g. a Replicator render product).
        run_id: the writing run's id (first key of the row).

    Returns:
        A row dict built by :func:`~simgap_ext.data.manifest.make_row`.
    """
    per_class = decision.per_class
    return make_row(
        domain="synthetic",
        sensor=sensor,
        decision=plan.label,
        path=path,
        label_path=label_path,
        index=index,
        seed=int(seed),
        attempt=int(attempt),
        frame_id=int(frame_id),
        focus_classes=list(focus_classes),
        class_points={n: int(c.n_points) for n, c in per_class.items()},
        class_instances={n: int(c.n_instances) for n, c in per_class.items()},
        g={n: c.g for n, c in per_class.items()},
        js={n: c.js for n, c in per_class.items()},
        scene_g=finite_or_none(decision.scene_g) if getattr(decision, "sane", True) else None,
        failing_classes=decision.failing_classes,
        quarantined=[n for n, c in per_class.items() if c.quarantined],
        reasons=plan.reasons,
        name=name,
        run_id=run_id,
    )


class AttemptRecorder:
    """Record gated attempts into a run directory: export (when accepted), manifest row, stats - in that order.

    The one recorder of the pull path (:class:`~simgap_ext.pipeline.GenerationRunner`) and the push path
    (:class:`~simgap_ext.replicator.sink.GatedExportSink`). Crash order: the pending-export record, then the scan
    files (atomic), then the durable row, then the stats; a kill between any two leaves files that
    :meth:`~simgap_ext.pipeline.run_dir.RunDir.find_leftovers` can prove are this run's.

    Args:
        run_dir: the :class:`~simgap_ext.pipeline.run_dir.RunDir` (locked by the caller).
        run_id: the run's id (in every row and in the pending record).
        exporter: the :class:`~simgap_ext.pipeline.exporter.Exporter` of ``run_dir``.
        manifest: an open :class:`~simgap_ext.data.manifest.ManifestWriter`.
        stats: the :class:`~simgap_ext.pipeline.stats.AcceptanceStats` updated from each row.
        next_index: scan index of the next accepted attempt.
    """

    def __init__(
        self,
        run_dir: Any,
        run_id: str,
        exporter: Any,
        manifest: ManifestWriter,
        stats: AcceptanceStats,
        *,
        next_index: int = 0,
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.exporter = exporter
        self.manifest = manifest
        self.stats = stats
        self.next_index = int(next_index)

    def record(
        self,
        frame: Mapping[str, Any],
        decision: Any,
        plan: RetryPlan,
        *,
        sensor: str,
        seed: int,
        attempt: int,
        frame_id: int,
        focus_classes: Sequence[str],
        name: str | None = None,
    ) -> dict[str, Any]:
        """Export ``frame`` when ``decision.accepted``, append its row and update the stats; returns the row.

        Raises:
            ExportError: a write failed; the manifest holds only complete rows.
        """
        path = label_path = index = None
        if decision.accepted:
            index = self.next_index
            self.run_dir.record_pending(self.run_id, index, len(frame["data"]))
            bin_path, lab_path = self.exporter.export(frame, index)
            path, label_path = self.exporter.relative(bin_path), self.exporter.relative(lab_path)
        row = attempt_row(
            decision,
            plan,
            sensor=sensor,
            seed=seed,
            attempt=attempt,
            frame_id=frame_id,
            focus_classes=focus_classes,
            path=path,
            label_path=label_path,
            index=index,
            name=name,
            run_id=self.run_id,
        )
        self.manifest.append(row)
        if index is not None:
            self.next_index = index + 1
        # From the row, not the decision: a resumed run rebuilds the stats from these very rows.
        self.stats.record_row(row)
        return row
