"""Gate an existing synthetic dataset against a reference bank (``simgap score --bank``, ``simgap gate``).

:func:`gate_scans` runs every scan through one :class:`~simgap_ext.gate.FrameGate` in order: the same code,
the same decisions and evidence as ``simgap generate``. With ``out_dir`` it also exports the accepted scans
(:class:`~simgap_ext.pipeline.exporter.Exporter`) and writes one ``manifest.jsonl`` row per input scan, in the
schema of ``generate`` (``docs/manifest.schema.json``), with ``name`` = the input scan's name. Without
``out_dir`` nothing is written (that is ``score --bank``).

The export directory follows the run-directory rules of :mod:`~simgap_ext.pipeline.run_dir`: it must be fresh (no
manifest, scans or files of SimGap's names), symlinks where SimGap writes are refused, and its exclusive lock is
held while rows are written, so a second ``simgap gate`` (or ``generate``) into the same folder is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run_dir import MANIFEST_NAME, RunDir

__all__ = ["OfflineResult", "gate_scans", "effects_transform", "MANIFEST_NAME"]

log = logging.getLogger(__name__)


def effects_transform(model: Any, seed: int = 0) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """A ``transform`` for :func:`gate_scans` that applies a fitted sensor-effect model to every scan.

    Args:
        model: a :class:`~simgap_ext.tune.SensorEffectModel` (``simgap tune``; see
            :func:`simgap_ext.tune.load.load_effect_model`).
        seed: the run's effect seed; scan ``i`` (in input order) gets ``derive_seed(seed, i, 0)``, so a re-run
            with the same seed gives the same frames.

    Returns:
        ``frame -> frame`` (a subset of the points, each moved along its ray; never more points).
    """
    from ..tune import apply_sensor_effects
    from .runner import derive_seed

    index = iter(range(1 << 62))

    def apply(frame: Mapping[str, Any]) -> Mapping[str, Any]:
        i = next(index)
        return apply_sensor_effects(frame, model, derive_seed(seed, i, 0), name=f"scan {i}")

    return apply


@dataclass
class OfflineResult:
    """The verdict on one input scan.

    Attributes:
        name: the input scan's name (file stem).
        decision: the :class:`~simgap_ext.gate.GateDecision`.
        row: its manifest row (``None`` when nothing was exported).
    """

    name: str
    decision: Any
    row: dict[str, Any] | None = None


def gate_scans(
    gate: Any,
    scans: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    out_dir: str | Path | None = None,
    transform: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    progress: Callable[[], None] | None = None,
) -> list[OfflineResult]:
    """Gate scans in order, optionally exporting the accepted ones with a manifest.

    Args:
        gate: a :class:`~simgap_ext.gate.FrameGate`.
        scans: ``(name, frame)`` pairs as :func:`simgap_ext.data.iter_scans` yields them.
        out_dir: export directory (SemanticKITTI layout + ``manifest.jsonl``); ``None``: score only. It must not
            already hold a manifest (nothing is overwritten).
        transform: optional ``frame -> frame`` applied to every scan before it is gated (e.g. sensor-effect
            post-processing); the gate judges, and the export holds, the transformed frame.
        progress: called once per scan.

    Returns:
        One :class:`OfflineResult` per input scan, in order.

    Raises:
        SimGapInputError: ``out_dir`` already holds a manifest, scans or other files of SimGap's names, holds a
            symlink where SimGap writes, or a scan breaks the frame contract.
        RunDirBusyError: another SimGap process writes into ``out_dir``.
        ExportError: a write failed (the manifest keeps only whole rows).
    """
    if out_dir is None:
        return _gate_all(gate, scans, None, transform, progress)
    run_dir = RunDir(out_dir)
    run_dir.check_fresh()  # before the lock creates the folder: a refused folder is left as it was
    with run_dir.lock():
        run_dir.check_fresh()  # again under the lock: another writer may have started meanwhile
        return _gate_all(gate, scans, run_dir.path, transform, progress)


def _gate_all(
    gate: Any,
    scans: Iterable[tuple[str, Mapping[str, Any]]],
    out: Path | None,
    transform: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None,
    progress: Callable[[], None] | None,
) -> list[OfflineResult]:
    from ..data.manifest import ManifestWriter
    from .attempt import RetryPlan, attempt_row
    from .exporter import Exporter
    from .stats import decision_label

    results: list[OfflineResult] = []
    writer = None
    exporter = None
    if out is not None:
        exporter = Exporter(out)
        writer = ManifestWriter(out / MANIFEST_NAME)
    index = 0
    try:
        for name, frame in scans:
            if transform is not None:
                frame = transform(frame)
            decision = gate.evaluate(frame)
            row = None
            if writer is not None and exporter is not None:
                path = label_path = None
                idx = None
                if decision.accepted:
                    bin_path, lab_path = exporter.export(frame, index)
                    path, label_path, idx = exporter.relative(bin_path), exporter.relative(lab_path), index
                    index += 1
                plan = RetryPlan(retry=False, label=decision_label(decision), reasons=list(decision.reasons))
                row = attempt_row(
                    decision,
                    plan,
                    sensor=str(frame.get("sensor", "unknown")),
                    seed=int(frame.get("seed", 0)),
                    attempt=int(frame.get("attempt", 0)),
                    frame_id=int(frame.get("frame_id", len(results))),
                    focus_classes=list(frame.get("focus_classes", []) or []),
                    path=path,
                    label_path=label_path,
                    index=idx,
                    name=name,
                )
                writer.append(row)
            results.append(OfflineResult(name, decision, row))
            if progress is not None:
                progress()
    finally:
        if writer is not None:
            writer.close()
    log.info("gated %d scans: %d accepted", len(results), sum(r.decision.accepted for r in results))
    return results
