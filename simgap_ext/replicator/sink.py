"""Push-style gate + export for frames that arrive from Replicator (the writer path).

:class:`~simgap_ext.pipeline.GenerationRunner` *pulls* frames from a scene source; inside a Replicator graph the
frames are *pushed* into ``Writer.write``. :class:`GatedExportSink` gives the push path the same outcome as the
runner: the gate decides, accepted frames are exported in SemanticKITTI layout (contiguous scan indices), every
attempt becomes one ``manifest.jsonl`` row (same schema and decision labels), and the shared
:class:`~simgap_ext.pipeline.stats.AcceptanceStats` is updated from that row. Pure Python: no omni import.

Frames the adapters flagged as unusable (empty, all-zero RTX object ids, ...) are recorded as ``rejected`` with the
reason and never reach the gate, so they neither get scored nor disturb the gate's rolling semantic window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.manifest import ManifestWriter, read_manifest
from ..errors import SimGapInputError
from ..gate.decision import GateDecision
from ..pipeline.attempt import attempt_row, plan_retry
from ..pipeline.exporter import Exporter
from ..pipeline.runner import RUN_CONFIG_NAME
from ..pipeline.stats import AcceptanceStats
from .adapters import frame_issues

__all__ = ["GatedExportSink", "MANIFEST_NAME"]

_log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"


class GatedExportSink:
    """Gate, export and record frames one at a time.

    Args:
        gate: anything with ``evaluate(frame) -> GateDecision`` (a :class:`~simgap_ext.gate.FrameGate`).
        out_dir: export root (``velodyne/``, ``labels/``, ``label_map.yaml``, ``manifest.jsonl``).
        stats: the observable model to update (a fresh one by default).
        tail_classes: classes whose failure asks for a re-randomization (a quarantined class does too, see
            :func:`~simgap_ext.pipeline.attempt.plan_retry`).
        max_retries: re-randomizations of one scene before its rejection is final (>= 0).
        on_rerandomize: called with ``(frame, decision)`` when a rejected frame should be re-rendered (the
            writer sends Replicator's custom event from here).
        min_points: frames with fewer points are rejected unscored.

    Raises:
        SimGapInputError: ``out_dir`` holds SemanticKITTI scans but no manifest (not an export of ours), or is a
            ``simgap generate`` run directory.

    Continuing into an ``out_dir`` that already holds a manifest appends to it: scan indices continue after the
    highest exported one, and scan/label files that no manifest row records (written by a session that died before
    its row) are deleted first.
    """

    def __init__(
        self,
        gate: Any,
        out_dir: str | Path,
        *,
        stats: AcceptanceStats | None = None,
        tail_classes: Sequence[str] = (),
        max_retries: int = 3,
        on_rerandomize: Callable[[Mapping[str, Any], GateDecision], None] | None = None,
        min_points: int = 1,
    ) -> None:
        if not hasattr(gate, "evaluate"):
            raise SimGapInputError(f"gate must have an evaluate(frame) method, got {type(gate).__name__}")
        if int(max_retries) != max_retries or max_retries < 0:
            raise SimGapInputError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.gate = gate
        self.out_dir = Path(out_dir)
        self.stats = stats if stats is not None else AcceptanceStats()
        self.tail_classes = [str(c) for c in tail_classes]
        self.max_retries = int(max_retries)
        self.on_rerandomize = on_rerandomize
        self.min_points = int(min_points)
        self.manifest_path = self.out_dir / MANIFEST_NAME
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.exporter = Exporter(self.out_dir)
        if (self.out_dir / RUN_CONFIG_NAME).exists():
            # A `simgap generate` run: rows appended here would break its schedule and its --resume.
            raise SimGapInputError(
                f"{self.out_dir} holds a simgap generate run ({RUN_CONFIG_NAME}); give the writer its own output_dir"
            )
        if not self.manifest_path.exists() and self.exporter.existing_indices():
            # Someone else's data: appending would mix it into our export, and the orphan clean-up would delete it.
            raise SimGapInputError(
                f"{self.out_dir} holds SemanticKITTI scans but no {MANIFEST_NAME}; choose an empty output directory"
            )
        rows = read_manifest(self.manifest_path, repair=True, missing_ok=True)
        indices = [int(r["index"]) for r in rows if r.get("index") is not None]
        self._next_index = max(indices) + 1 if indices else 0
        # Scans written by a session that died before their manifest row are orphans: a SemanticKITTI loader
        # would take them for samples the gate never recorded (the runner cleans them the same way on resume).
        removed = self.exporter.remove_orphans(indices)
        if removed:
            _log.warning("removed %d orphan file(s) of an interrupted session from %s", len(removed), self.out_dir)
        self._manifest: ManifestWriter | None = None
        self.counts = {"received": 0, "accepted": 0, "rejected": 0, "invalid": 0, "rerandomized": 0}

    @property
    def next_index(self) -> int:
        """Scan index the next accepted frame gets."""
        return self._next_index

    def _writer(self) -> ManifestWriter:
        if self._manifest is None:
            self._manifest = ManifestWriter(self.manifest_path)
        return self._manifest

    def submit(self, frame: Mapping[str, Any]) -> GateDecision:
        """Gate one frame, export it when accepted, append its manifest row and update the stats.

        Args:
            frame: a frame in the DESIGN.md layout (usually from :mod:`simgap_ext.replicator.adapters`).

        Returns:
            The decision (an unscored ``invalid`` one for frames with fatal adapter issues).

        Raises:
            ExportError: writing the scan or the manifest row failed (nothing partial is left behind).
        """
        # The manifest exists before the first scan (as in the runner): scans without a manifest are never ours.
        manifest = self._writer()
        self.counts["received"] += 1
        issues = frame_issues(frame, min_points=self.min_points)
        if issues:
            decision = GateDecision(
                accepted=False,
                reasons=issues,
                sane=False,
                status="invalid",
                frame_id=int(frame.get("frame_id", 0)),
                seed=int(frame.get("seed", 0)),
                attempt=int(frame.get("attempt", 0)),
                sensor=str(frame.get("sensor", "unknown")),
            )
            self.counts["invalid"] += 1
            _log.warning("frame %s not scored: %s", frame.get("frame_id"), "; ".join(issues))
        else:
            decision = self.gate.evaluate(frame)
        attempt = int(frame.get("attempt", 0))
        plan = plan_retry(decision, tail_classes=self.tail_classes, attempt=attempt, max_retries=self.max_retries)
        retry = plan.retry
        path = label_path = index = None
        if decision.accepted:
            bin_path, lab_path = self.exporter.export(frame, self._next_index)
            path, label_path, index = (
                self.exporter.relative(bin_path),
                self.exporter.relative(lab_path),
                self._next_index,
            )
            self._next_index += 1
        row = attempt_row(
            decision,
            plan,
            sensor=str(frame.get("sensor", "unknown")),
            seed=int(frame.get("seed", 0)),
            attempt=attempt,
            frame_id=int(frame.get("frame_id", 0)),
            focus_classes=list(frame.get("focus_classes", ())),
            path=path,
            label_path=label_path,
            index=index,
            name=frame.get("render_product") or None,
        )
        manifest.append(row)
        self.stats.record_row(row)
        if decision.accepted:
            self.counts["accepted"] += 1
        elif retry:
            self.counts["rerandomized"] += 1
        else:
            self.counts["rejected"] += 1
        if retry and self.on_rerandomize is not None:
            self.on_rerandomize(frame, decision)
        return decision

    def flush(self) -> None:
        """Close the manifest file (rows are already durable; this releases the handle)."""
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None

    def reset_counts(self) -> None:
        """Zero the per-session counters (the manifest and the export are kept)."""
        self.counts = dict.fromkeys(self.counts, 0)
