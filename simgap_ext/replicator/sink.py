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

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.atomic import temp_tag
from ..data.manifest import DECISIONS, ManifestWriter
from ..errors import SimGapInputError
from ..gate.decision import GateDecision
from ..pipeline.attempt import AttemptRecorder, plan_retry
from ..pipeline.exporter import Exporter
from ..pipeline.run_dir import MANIFEST_NAME, RUN_CONFIG_NAME, RUN_FORMAT, RunDir, new_run_id
from ..pipeline.stats import AcceptanceStats
from .adapters import frame_issues

__all__ = ["GatedExportSink", "MANIFEST_NAME"]

_log = logging.getLogger(__name__)


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
        self.run_dir = RunDir(self.out_dir)
        self.manifest_path = self.run_dir.manifest
        if self.run_dir.run_config.exists() or self.run_dir.run_config.is_symlink():
            # A `simgap generate` run: rows appended here would break its schedule and its --resume.
            raise SimGapInputError(
                f"{self.out_dir} holds a simgap generate run ({RUN_CONFIG_NAME}); give the writer its own output_dir"
            )
        owner = self.run_dir.read_owner(self.run_dir.writer_record)
        if owner is None:
            # Read-only check before the lock: a refused directory is left without even a lock file.
            self.run_dir.check_fresh(bank_cache_ok=True)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(self.run_dir.lock())
        self._locked = True
        try:
            self.run_id, self._next_index = self._open_session(owner)
        except BaseException:
            self._lock.close()
            raise
        self.exporter = Exporter(self.out_dir)
        self._recorder: AttemptRecorder | None = None
        # Manifest decisions (DECISIONS: they sum to "received"), plus "invalid": the unscored ones among "rejected".
        self.counts = {"received": 0, **dict.fromkeys(DECISIONS, 0), "invalid": 0}

    def _open_session(self, owner: Mapping[str, Any] | None) -> tuple[str, int]:
        """Claim a fresh directory (``writer.json``) or prove an existing export is ours and clean its leftovers.

        Returns:
            (run id, next scan index).
        """
        owner = self.run_dir.read_owner(self.run_dir.writer_record)  # again, under the lock
        if owner is None:
            self.run_dir.check_fresh(bank_cache_ok=True)
            run_id = new_run_id()
            self.run_dir.write_owner(
                self.run_dir.writer_record, {"format": RUN_FORMAT, "kind": "replicator-writer", "run_id": run_id}
            )
            return run_id, 0
        run_id = str(owner["run_id"])
        rows, torn = self.run_dir.prove_manifest(run_id)
        indices = [int(r["index"]) for r in rows if r.get("index") is not None]
        # Scans written by a session that died before their manifest row are orphans: a SemanticKITTI loader
        # would take them for samples the gate never recorded (the runner cleans them the same way on resume).
        leftovers = self.run_dir.find_leftovers(run_id, indices)
        if torn:
            self.run_dir.cut_manifest_tail(torn)
        self.run_dir.remove(leftovers)
        if leftovers:
            _log.warning(
                "removed %d file(s) of an interrupted session from %s: %s",
                len(leftovers),
                self.out_dir,
                ", ".join(str(p) for p in leftovers),
            )
        return run_id, (max(indices) + 1 if indices else 0)

    @property
    def removed(self) -> list[Path]:
        """Files this sink removed when it opened (left by an interrupted session, each proven its own)."""
        return list(self.run_dir.removed)

    @property
    def next_index(self) -> int:
        """Scan index the next accepted frame gets."""
        return self._recorder.next_index if self._recorder is not None else self._next_index

    @property
    def _manifest(self) -> ManifestWriter | None:
        """The open manifest writer (``None`` between sessions)."""
        return self._recorder.manifest if self._recorder is not None else None

    def _writer(self) -> AttemptRecorder:
        if self._recorder is None:
            if not self._locked:  # released by flush(): take it again
                self._lock.enter_context(self.run_dir.lock())
                self._locked = True
            with temp_tag(self.run_id):
                manifest = ManifestWriter(self.manifest_path, repair=False)
            self._recorder = AttemptRecorder(
                self.run_dir, self.run_id, self.exporter, manifest, self.stats, next_index=self._next_index
            )
        return self._recorder

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
        recorder = self._writer()
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
        with temp_tag(self.run_id):
            recorder.record(
                frame,
                decision,
                plan,
                sensor=str(frame.get("sensor", "unknown")),
                seed=int(frame.get("seed", 0)),
                attempt=attempt,
                frame_id=int(frame.get("frame_id", 0)),
                focus_classes=list(frame.get("focus_classes", ())),
                name=frame.get("render_product") or None,
            )
        self._next_index = recorder.next_index
        self.counts[plan.label] += 1
        if plan.retry and self.on_rerandomize is not None:
            self.on_rerandomize(frame, decision)
        return decision

    def flush(self) -> None:
        """Close the manifest file and release the directory's lock (rows are already durable)."""
        if self._recorder is not None:
            self._recorder.manifest.close()
            self._next_index = self._recorder.next_index
            self._recorder = None
        self._lock.close()
        self._locked = False

    def reset_counts(self) -> None:
        """Zero the per-session counters (the manifest and the export are kept)."""
        self.counts = dict.fromkeys(self.counts, 0)
