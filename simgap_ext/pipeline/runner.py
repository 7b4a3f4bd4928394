"""Batch generation: randomize -> render -> gate -> export / re-randomize, crash-safe and resumable.

Schedule. A run renders ``n_frames`` scheduled frames ``frame_id = 0 .. n_frames-1``. Attempt ``a`` of frame ``k``
renders with seed :func:`derive_seed` ``(run_seed, k, a)`` and the focus classes the focus plan chose for ``k``
(kept for every attempt of ``k``). A rejected attempt whose failing classes include a tail class, or that holds a
class in semantic quarantine (:func:`~simgap_ext.pipeline.attempt.plan_retry`), is re-rendered (``a + 1``) until
``max_retries`` re-randomizations are spent; every attempt is one manifest row:
``rerandomized`` for an attempt that was retried, ``accepted`` (exported), ``held_back`` (blocked only by
semantic quarantine) or ``rejected`` for the last one.

Crash safety. An accepted frame's files are written atomically first (scan index = number of accepted rows so
far, so indices are contiguous), then its manifest row is appended and fsynced; the stats model is updated
last. ``run.json`` holds the run configuration. On ``resume=True`` the runner cuts a torn last manifest line,
checks ``run.json`` against the new configuration (a mismatch is an error), deletes orphan files (written but
never recorded), rebuilds the stats from the manifest, restores the gate's state (the semantic quarantine's
rolling windows and hysteresis flags) to what it was after the last recorded attempt, and continues the schedule
at the first attempt without a row. A resumed run therefore ends with the same manifest rows and files as an
uninterrupted one. ``n_frames`` is not part of the configuration: resuming with a larger ``n_frames`` extends a run.

Gate state. After each attempt's row is durable, the quarantine's ``state_dict()`` is written atomically to
``gate_state.json`` together with the number of manifest rows it reflects (``rows``) and the key of the last. Since
it is written *after* the row, ``rows <= len(manifest)`` whatever the moment of a kill (between the row and the
state write: ``rows = len(manifest) - 1``). The gate is a deterministic function of (its state, the frame) and a
recorded attempt re-renders to the same frame (seed and focus are in the row), so loading the state of ``rows`` and
replaying only ``manifest[rows:]`` (normally 0 or 1 attempts) yields exactly the state of an uninterrupted run. A
missing, foreign or unreadable state file falls back to replaying every row from a fresh gate (what older runs get),
which is equally exact, only slower.

Pipelining (``pipeline=True``). While the gate checks attempt ``a`` of frame ``k``, a worker process (or a thread
where processes are unavailable, e.g. inside Kit; :func:`~simgap_ext.pipeline.prefetch.open_prefetcher`) renders
the attempt most likely to come next -- frame ``k + 1`` attempt 0 with the focus the plan gives it now. Every
decision, row and file is still made in order on the calling thread; the prefetched frame is used only if the
attempt that really comes next has the same seed, focus, frame and attempt (else it is dropped and rendered again),
so the run directory is byte-identical to a sequential run's and resume is unchanged. Only for scene sources that
may render outside the main thread (not Replicator in Kit). A worker process also computes the gate's frame
statistics; which of their parts it leaves to the main process is balanced from measured times
(:mod:`~simgap_ext.pipeline.balance`), which moves work between the processes but never changes a value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..data.atomic import atomic_write_bytes, temp_tag
from ..data.manifest import ManifestWriter
from ..errors import SimGapInputError
from ..gate.frame_stats import DEFERRABLE
from .attempt import AttemptRecorder, plan_retry
from .balance import ALL_STATS, StatsBalancer, WorkerStats
from .blas_threads import limit_blas_threads
from .exporter import Exporter
from .live import LiveTable
from .prefetch import PIPELINE_MODES, open_prefetcher
from .run_dir import (
    GATE_STATE_NAME,
    MANIFEST_NAME,
    RUN_CONFIG_NAME,
    RUN_FORMAT,
    RunDir,
    decode_gate_state,
    encode_gate_state,
    run_id_for_config,
)
from .stats import AcceptanceStats, decision_label

__all__ = [
    "FocusPlan",
    "TailFocusPlan",
    "GenerationRunner",
    "GenerationSummary",
    "derive_seed",
    "fingerprint_file",
    "MANIFEST_NAME",
    "RUN_CONFIG_NAME",
    "GATE_STATE_NAME",
]

_log = logging.getLogger(__name__)


def derive_seed(run_seed: int, frame_id: int, attempt: int) -> int:
    """The render seed of attempt ``attempt`` of frame ``frame_id``: a 32-bit value from NumPy's SeedSequence,
    identical on every platform and independent of how many attempts other frames took."""
    if run_seed < 0 or frame_id < 0 or attempt < 0:
        raise SimGapInputError(f"seed, frame_id and attempt must be >= 0, got {run_seed}, {frame_id}, {attempt}")
    return int(np.random.SeedSequence([int(run_seed), int(frame_id), int(attempt)]).generate_state(1, np.uint32)[0])


class FocusPlan(Protocol):
    """Chooses the classes the scene randomizer should feature in a scheduled frame."""

    def focus_for(self, frame_id: int, stats: AcceptanceStats) -> list[str]:
        """Focus classes for ``frame_id`` given what was accepted so far (must be deterministic)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-safe description stored in ``run.json`` (a resume with a different plan is refused)."""
        ...


class TailFocusPlan:
    """Round-robin focus over the tail classes that still have a deficit.

    Frame ``k`` focuses on ``candidates[k % len(candidates)]`` where ``candidates`` are the tail classes (rarest
    first) whose accepted synthetic instance count is still below their target; with no targets every tail class
    stays a candidate. Without candidates a frame has no focus (an ordinary randomized scene).

    Args:
        tail_classes: tail classes, rarest first (e.g. :func:`~simgap_ext.gate.identify_tail_classes`).
        targets: class -> accepted synthetic instances wanted (e.g. the ``deficit`` of
            :func:`~simgap_ext.gate.compute_synthetic_generation_budget`); ``None``: unbounded.
    """

    def __init__(self, tail_classes: Sequence[str], targets: Mapping[str, int] | None = None) -> None:
        self.tail_classes = [str(c) for c in tail_classes]
        self.targets = None if targets is None else {str(k): int(v) for k, v in targets.items()}

    def focus_for(self, frame_id: int, stats: AcceptanceStats) -> list[str]:
        """See the class docstring."""
        accepted = stats.accepted_instance_counts()
        cands = [c for c in self.tail_classes if self.targets is None or accepted.get(c, 0) < self.targets.get(c, 0)]
        return [cands[frame_id % len(cands)]] if cands else []

    def describe(self) -> dict[str, Any]:
        """See :class:`FocusPlan`."""
        return {"kind": "tail-round-robin", "tail_classes": self.tail_classes, "targets": self.targets}


@dataclass
class GenerationSummary:
    """What a :meth:`GenerationRunner.run` call did.

    Attributes:
        out_dir: the run directory.
        manifest_path: its manifest.
        n_frames: frames scheduled in total.
        resumed_at: (frame_id, attempt) the run continued from; ``None`` for a fresh run.
        frames_done: scheduled frames finished by this call.
        attempts: attempts (manifest rows) written by this call.
        exported: scans in the export after the call.
        orphans_removed: files deleted on resume (left by an interrupted run; each proven to be this run's).
        removed: those files' paths.
        counts: attempts per decision over the whole run (``accepted``, ``rejected``, ``rerandomized``,
            ``held_back``, ``attempts``).
        stats: the run's :class:`AcceptanceStats`.
    """

    out_dir: Path
    manifest_path: Path
    n_frames: int
    resumed_at: tuple[int, int] | None
    frames_done: int
    attempts: int
    exported: int
    orphans_removed: int
    counts: dict[str, int]
    stats: AcceptanceStats = field(repr=False)
    removed: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (stats as :meth:`AcceptanceStats.to_dict`)."""
        return {
            "out_dir": str(self.out_dir),
            "manifest_path": str(self.manifest_path),
            "n_frames": self.n_frames,
            "resumed_at": list(self.resumed_at) if self.resumed_at else None,
            "frames_done": self.frames_done,
            "attempts": self.attempts,
            "exported": self.exported,
            "orphans_removed": self.orphans_removed,
            "removed": [str(p) for p in self.removed],
            "counts": dict(self.counts),
            "stats": self.stats.to_dict(),
        }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class GenerationRunner:
    """Drive a scene source through the gate into a SemanticKITTI export with a manifest.

    Args:
        source: a :class:`~simgap_ext.backends.SceneSource` (``sensor_name``, ``class_names``, ``render(...)``).
        gate: a :class:`~simgap_ext.gate.FrameGate` (``evaluate(frame) -> GateDecision``).
        out_dir: run directory (``manifest.jsonl``, ``run.json``, ``velodyne/``, ``labels/``, ``label_map.yaml``).
        stats: the model to record into (a fresh :class:`AcceptanceStats` by default); must be empty.
        tail_classes: classes whose failure triggers re-randomization (rarest first; quarantined classes trigger it
            too, see :func:`~simgap_ext.pipeline.attempt.plan_retry`). Classes the source cannot render are still
            retried on failure but never used as focus.
        max_retries: re-randomizations per scheduled frame (>= 0).
        focus_plan: a :class:`FocusPlan` (default :class:`TailFocusPlan` over the renderable tail classes).
        seed: run seed (>= 0); every render seed derives from it.
        run_config: extra settings stored in ``run.json`` and compared on resume (sensor, backend, preset, bank
            fingerprint, gate config...).
        replay_on_resume: restore the gate's state (the semantic quarantine windows) on resume so that it matches
            an uninterrupted run: load ``gate_state.json`` and re-render and re-gate only the recorded attempts it
            does not cover (all of them without a usable state file). ``None`` (default): restore unless the gate
            has no quarantine (``gate.quarantine is None``, a stateless gate).
        pipeline: render the predicted next attempt ahead while the gate checks the current one (see the module
            docstring): ``True`` or ``"auto"`` (a worker process, else a thread), ``"process"``, ``"thread"``;
            ``False``: in order. The source's ``render`` must be safe to call off the main thread, and for a process
            the source must pickle.

    Attributes:
        defer_stats: with a worker process: ``None`` (default) balances which gate statistics parts the worker
            leaves to this process (:class:`~simgap_ext.pipeline.balance.StatsBalancer`); ``k`` always defers the
            first ``k`` of :data:`~simgap_ext.gate.frame_stats.DEFERRABLE`, and ``len(DEFERRABLE) + 1`` all of
            them (the worker only renders). Never changes a result.
    """

    def __init__(
        self,
        source: Any,
        gate: Any,
        out_dir: str | Path,
        *,
        stats: AcceptanceStats | None = None,
        tail_classes: Sequence[str] = (),
        max_retries: int = 3,
        focus_plan: FocusPlan | None = None,
        seed: int = 0,
        run_config: Mapping[str, Any] | None = None,
        replay_on_resume: bool | None = None,
        pipeline: bool | str = False,
    ) -> None:
        if int(max_retries) != max_retries or max_retries < 0:
            raise SimGapInputError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if int(seed) != seed or seed < 0:
            raise SimGapInputError(f"seed must be an integer >= 0, got {seed!r}")
        self.source = source
        self.gate = gate
        self.out_dir = Path(out_dir)
        self.stats = stats if stats is not None else AcceptanceStats()
        self.tail_classes = [str(c) for c in tail_classes]
        self.max_retries = int(max_retries)
        self.seed = int(seed)
        renderable = set(getattr(source, "class_names", ()) or ())
        focusable = [c for c in self.tail_classes if not renderable or c in renderable]
        dropped = sorted(set(self.tail_classes) - set(focusable))
        if dropped:
            _log.warning(
                "tail classes %s cannot be rendered by the scene source; they are never used as focus", dropped
            )
        self.focus_plan: FocusPlan = focus_plan if focus_plan is not None else TailFocusPlan(focusable)
        self.run_config = dict(run_config or {})
        if replay_on_resume is None:
            replay_on_resume = getattr(gate, "quarantine", True) is not None
        self.replay_on_resume = bool(replay_on_resume)
        self.run_dir = RunDir(self.out_dir)
        self.manifest_path = self.run_dir.manifest
        self.run_config_path = self.run_dir.run_config
        self.gate_state_path = self.run_dir.gate_state
        self.exporter = Exporter(self.out_dir)
        if pipeline is True:
            pipeline = "auto"
        if pipeline is not False and pipeline not in PIPELINE_MODES:
            raise SimGapInputError(f"pipeline must be True, False or one of {PIPELINE_MODES}, got {pipeline!r}")
        self.pipeline: str | None = pipeline or None
        self._prefetch: Any = None
        self._balancer: StatsBalancer | None = None
        self._waited = 0.0  # seconds the last attempt waited for the render worker
        self.defer_stats: int | None = None
        #: after a pipelined run: attempts whose statistics parts the worker left to this process, per part count
        #: (``len(DEFERRABLE) + 1``: all of them, the worker only rendered)
        self.deferred_stats: dict[int, int] = {}
        self._with_stats = False
        self._worker_level: int | None = None  # the current attempt's deferred parts when the worker rendered it
        #: after a pipelined run: prefetched renders ``used`` and ``dropped`` (mispredicted)
        self.prefetched = {"used": 0, "dropped": 0}
        #: after a pipelined run: where the renders ahead ran (``"process"`` or ``"thread"``)
        self.pipeline_worker: str | None = None
        self._n_frames = 0
        self._n_rows = 0  # manifest rows so far (the position a saved gate state refers to)
        self._config_sha256: str | None = None
        self.run_id = ""

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """The configuration stored in ``run.json`` (everything that changes the schedule or the decisions)."""
        return _jsonable(
            {
                "format": RUN_FORMAT,
                "seed": self.seed,
                "sensor": str(getattr(self.source, "sensor_name", "unknown")),
                "max_retries": self.max_retries,
                "tail_classes": self.tail_classes,
                # Without describe(): the plan's class (a default repr holds a memory address, so no resume would
                # ever match).
                "focus_plan": self.focus_plan.describe()
                if hasattr(self.focus_plan, "describe")
                else f"{type(self.focus_plan).__module__}.{type(self.focus_plan).__qualname__}",
                **self.run_config,
            }
        )

    def _check_or_write_config(self, resume: bool) -> bool:
        """Check ``run.json`` against this configuration (resume) or write it (fresh run).

        Returns:
            Whether the directory holds a recorded run of this configuration.
        """
        cfg = self.config()
        saved = self.run_dir.read_owner(self.run_config_path) if resume else None
        if saved is None:
            # A fresh run (also --resume with nothing recorded yet): nothing of SimGap's names may exist here.
            self.run_dir.check_fresh(bank_cache_ok=True)
            self.run_dir.write_owner(self.run_config_path, {**cfg, "run_id": self.run_id})
            return False
        saved = dict(saved)
        saved_id = saved.pop("run_id")
        if saved != cfg:
            keys = sorted(k for k in set(saved) | set(cfg) if saved.get(k) != cfg.get(k))
            detail = ", ".join(f"{k}: {saved.get(k)!r} -> {cfg.get(k)!r}" for k in keys[:3])
            raise SimGapInputError(
                f"cannot resume {self.out_dir}: configuration differs from {RUN_CONFIG_NAME} in {', '.join(keys)} "
                f"({detail})"[:600]
            )
        if saved_id != self.run_id:
            raise SimGapInputError(f"{self.run_config_path}: run_id {saved_id!r} does not match its configuration")
        return True

    # ------------------------------------------------------------------ resume
    def _restore(self, rows: list[dict[str, Any]], torn: int) -> tuple[int, int, list[str] | None]:
        """Check recorded rows, clean what this run left unrecorded, rebuild stats and gate state (saved state +
        replay of the rest). Everything is checked before anything is modified.

        Returns:
            (next frame_id, next attempt, focus of a frame in progress or None).
        """
        exported: list[int] = []
        prev: dict[str, Any] | None = None
        for i, row in enumerate(rows, start=1):
            where = f"{self.manifest_path}:{i}"
            if row["domain"] != "synthetic" or row["frame_id"] is None:
                raise SimGapInputError(f"{where}: not a synthetic generation row")
            fid, att = int(row["frame_id"]), int(row["attempt"])
            if prev is None:
                expected = [(0, 0)]
            elif prev["decision"] == "rerandomized":
                expected = [(int(prev["frame_id"]), int(prev["attempt"]) + 1)]
            else:
                expected = [(int(prev["frame_id"]) + 1, 0)]
            if (fid, att) not in expected:
                raise SimGapInputError(
                    f"{where}: frame {fid} attempt {att} breaks the schedule (expected frame {expected[0][0]} "
                    f"attempt {expected[0][1]}); the manifest was edited or belongs to another run"
                )
            if row["seed"] != derive_seed(self.seed, fid, att):
                raise SimGapInputError(
                    f"{where}: seed {row['seed']} is not this run's seed for frame {fid} attempt {att}"
                )
            if row["decision"] == "accepted":
                if row.get("index") != len(exported):
                    raise SimGapInputError(f"{where}: export index {row.get('index')} breaks the contiguous numbering")
                exported.append(len(exported))
                for key in ("path", "label_path"):
                    p = self.out_dir / row[key]
                    if not p.is_file():
                        raise SimGapInputError(f"{where}: recorded file {p} is missing")
            prev = row
        leftovers = self.run_dir.find_leftovers(self.run_id, exported)
        # Proven ours (rows, torn tail, leftovers): only now is anything modified.
        if torn:
            self.run_dir.cut_manifest_tail(torn)
        self.run_dir.remove(leftovers)
        if not rows and self.gate_state_path.is_file():
            # Nothing recorded: a state file here is stale (a kill before the first row of an earlier start).
            self.run_dir.remove([self.gate_state_path])
        for row in rows:
            self.stats.record_row(row)
        if self.replay_on_resume and rows:
            # The saved state reflects rows[:start] (start <= len(rows): it is written after its row); the gate is
            # deterministic in (state, frame), so replaying only rows[start:] ends where an uninterrupted run was.
            # start == 0 (no usable file) is the full replay from the gate as built.
            start = self._load_gate_state(rows)
            if start < len(rows):
                _log.info(
                    "replaying %d of %d recorded attempts through the gate to restore its state",
                    len(rows) - start,
                    len(rows),
                )
            for row in rows[start:]:
                frame = self.source.render(
                    seed=int(row["seed"]),
                    focus_classes=list(row["focus_classes"]),
                    frame_id=int(row["frame_id"]),
                    attempt=int(row["attempt"]),
                )
                decision = self.gate.evaluate(frame)
                if decision_label(decision, rerandomized=row["decision"] == "rerandomized") != row["decision"]:
                    _log.warning(
                        "replay of frame %s attempt %s gave %s, the manifest says %s (non-deterministic source?)",
                        row["frame_id"],
                        row["attempt"],
                        decision_label(decision),
                        row["decision"],
                    )
        if not rows:
            return 0, 0, None
        last = rows[-1]
        if last["decision"] == "rerandomized":
            return int(last["frame_id"]), int(last["attempt"]) + 1, list(last["focus_classes"])
        return int(last["frame_id"]) + 1, 0, None

    # ------------------------------------------------------------------ run
    def run(self, n_frames: int, *, resume: bool = False, progress: bool = True) -> GenerationSummary:
        """Render, gate and export ``n_frames`` scheduled frames (continuing a previous run on ``resume``).

        Args:
            n_frames: total scheduled frames of the run (>= 0), including those done before a resume.
            resume: continue the run recorded in ``out_dir``; without it ``out_dir`` must not hold a run.
            progress: show the live progress bar and per-class table on stderr.

        Returns:
            A :class:`GenerationSummary`.

        Raises:
            SimGapInputError: bad arguments, an existing run without ``resume``, a configuration mismatch on
                resume, or an inconsistent manifest.
            ExportError: a write failed (full disk, unwritable directory); the manifest holds only complete rows
                and the run can be resumed once the cause is fixed.
        """
        if int(n_frames) != n_frames or n_frames < 0:
            raise SimGapInputError(f"n_frames must be an integer >= 0, got {n_frames!r}")
        if self.stats.frame_counts["attempts"]:
            raise SimGapInputError("GenerationRunner needs an empty AcceptanceStats (it rebuilds it from the manifest)")
        self._config_sha256 = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()
        self.run_id = run_id_for_config(self._config_sha256)
        # Read-only checks first, so that a refused directory is left without even a lock file; repeated under the
        # lock, where they count.
        if not (resume and self.run_dir.read_owner(self.run_config_path) is not None):
            self.run_dir.check_fresh(bank_cache_ok=True)
        with self.run_dir.lock(), temp_tag(self.run_id):
            return self._run_locked(int(n_frames), resume, progress)

    def _run_locked(self, n_frames: int, resume: bool, progress: bool) -> GenerationSummary:
        self.run_dir.removed = []
        recorded = self._check_or_write_config(resume)
        rows, torn = self.run_dir.prove_manifest(self.run_id) if recorded else ([], 0)
        next_frame, next_attempt, pending_focus = self._restore(rows, torn)
        self._n_rows = len(rows)
        resumed_at = (next_frame, next_attempt) if resume and rows else None
        if resumed_at:
            _log.info("resuming %s at frame %d attempt %d", self.out_dir, next_frame, next_attempt)
        exported = sum(1 for r in rows if r["decision"] == "accepted")
        attempts = 0
        frames_done = 0
        view = LiveTable(self.stats, n_frames, completed=min(next_frame, n_frames)) if progress else None
        self._n_frames = n_frames
        # The gate's frame statistics depend on the frame alone: a worker process computes them beside the render.
        spec = getattr(self.gate, "stats_spec", None)
        self._prefetch = (
            open_prefetcher(self.source, self.pipeline, after_render=WorkerStats(spec()) if spec is not None else None)
            if self.pipeline
            else None
        )
        self._with_stats = spec is not None and getattr(self._prefetch, "concurrent_safe", False)
        # Starts with every part deferred: on os1-128 frames the worker (render + statistics) was the slower side
        # (bench_gate --generate settled there on 29 of 36 frames); the balancer moves back when it is not.
        start = len(DEFERRABLE) if self.defer_stats is None else self.defer_stats
        self._balancer = (
            StatsBalancer((*DEFERRABLE, ALL_STATS), deferred=start, adapt=self.defer_stats is None)
            if self._with_stats
            else None
        )
        # Both cores are the pipeline's: OpenBLAS's second thread would only compete with the worker (blas_threads).
        blas = limit_blas_threads(1) if self._prefetch is not None else contextlib.nullcontext()
        with blas, ManifestWriter(self.manifest_path, repair=False) as manifest:
            recorder = AttemptRecorder(
                self.run_dir, self.run_id, self.exporter, manifest, self.stats, next_index=exported
            )
            if view is not None:
                view.__enter__()
            try:
                for frame_id in range(next_frame, n_frames):
                    start = next_attempt if frame_id == next_frame else 0
                    focus = pending_focus if (frame_id == next_frame and pending_focus is not None) else None
                    if focus is None:
                        focus = list(self.focus_plan.focus_for(frame_id, self.stats))
                    for attempt in range(start, self.max_retries + 1):
                        retry = self._attempt(recorder, frame_id, attempt, focus)
                        attempts += 1
                        if not retry:
                            break
                    frames_done += 1
                    if view is not None:
                        view.advance()
            finally:
                if self._prefetch is not None:
                    self._prefetch.close()
                    self.prefetched = {"used": self._prefetch.hits, "dropped": self._prefetch.misses}
                    self.pipeline_worker = "process" if self._prefetch.concurrent_safe else "thread"
                    _log.debug("prefetched renders: %(used)d used, %(dropped)d dropped", self.prefetched)
                    self._prefetch = None
                if view is not None:
                    view.__exit__(None, None, None)
        return GenerationSummary(
            out_dir=self.out_dir,
            manifest_path=self.manifest_path,
            n_frames=int(n_frames),
            resumed_at=resumed_at,
            frames_done=frames_done,
            attempts=attempts,
            exported=recorder.next_index,
            orphans_removed=len(self.run_dir.removed),
            counts=self.stats.frame_counts,
            stats=self.stats,
            removed=list(self.run_dir.removed),
        )

    def _attempt(self, recorder: AttemptRecorder, frame_id: int, attempt: int, focus: list[str]) -> bool:
        """Render, gate and record one attempt. Returns whether to retry."""
        t0 = time.perf_counter()
        seed = derive_seed(self.seed, frame_id, attempt)
        frame, stats = self._render(seed, focus, frame_id, attempt)
        decision = self.gate.evaluate(frame) if stats is None else self.gate.evaluate(frame, stats=stats)
        plan = plan_retry(decision, tail_classes=self.tail_classes, attempt=attempt, max_retries=self.max_retries)
        row = recorder.record(
            frame,
            decision,
            plan,
            sensor=str(frame.get("sensor") or getattr(self.source, "sensor_name", "unknown")),
            seed=seed,
            attempt=attempt,
            frame_id=frame_id,
            focus_classes=focus,
        )
        self._n_rows += 1
        # After the row is durable, never before: a saved state then never covers a row the manifest lacks.
        self._save_gate_state(row)
        level = self._worker_level  # parts the worker left to this process; None: not rendered by the worker
        if level is not None:
            self.deferred_stats[level] = self.deferred_stats.get(level, 0) + 1
        if level is not None and self._balancer is not None and self._prefetch.last_job_s is not None:
            busy = time.perf_counter() - t0 - self._waited
            self._balancer.observe(self._prefetch.last_job_s, busy, level)
        return plan.retry

    def _render(self, seed: int, focus: list[str], frame_id: int, attempt: int) -> tuple[dict[str, Any], Any]:
        """The frame of one attempt and its gate statistics when a worker computed them (else ``None``): the
        prefetched ones when pipelining predicted this attempt. Then start the next prefetch."""
        pf = self._prefetch
        t0 = time.perf_counter()
        got = pf.take(self._render_key(seed, focus, frame_id, attempt)) if pf is not None else None
        self._waited = time.perf_counter() - t0
        self._worker_level = None
        if got is not None and self._with_stats:
            # the worker computed the statistics minus their pending parts, or none of them (ALL_STATS)
            self._worker_level = len(got[1].pending) if got[1] is not None else len(self._balancer.parts)
        if got is None and pf is not None and pf.concurrent_safe:
            # A worker process has its own source: start the next frame there before rendering this one here.
            self._prefetch_next(frame_id)
            return self.source.render(seed=seed, focus_classes=list(focus), frame_id=frame_id, attempt=attempt), None
        if got is None:
            got = self.source.render(seed=seed, focus_classes=list(focus), frame_id=frame_id, attempt=attempt)
        self._prefetch_next(frame_id)
        return got if self._with_stats else (got, None)

    def _prefetch_next(self, frame_id: int) -> None:
        pf = self._prefetch
        if pf is None or frame_id + 1 >= self._n_frames:
            return
        # Predict "no retry": the next frame's first attempt, with the focus the plan gives it before this attempt
        # is recorded (a changed focus or a retry only costs the dropped render).
        nxt_focus = list(self.focus_plan.focus_for(frame_id + 1, self.stats))
        nxt_seed = derive_seed(self.seed, frame_id + 1, 0)
        pf.submit(
            self._render_key(nxt_seed, nxt_focus, frame_id + 1, 0),
            # a balancer exists only when the worker computes the statistics (_with_stats)
            after_kwargs={"skip": self._balancer.skip()} if self._balancer is not None else None,
            seed=nxt_seed,
            focus_classes=nxt_focus,
            frame_id=frame_id + 1,
            attempt=0,
        )

    @staticmethod
    def _render_key(seed: int, focus: Sequence[str], frame_id: int, attempt: int) -> tuple[Any, ...]:
        return (int(seed), tuple(str(c) for c in focus), int(frame_id), int(attempt))

    # ------------------------------------------------------------------ gate state
    def _stateful_quarantine(self) -> Any:
        """The gate's quarantine when it can be saved and restored (else ``None``: full replay on resume)."""
        q = getattr(self.gate, "quarantine", None)
        return q if hasattr(q, "state_dict") and hasattr(q, "load_state_dict") else None

    def _save_gate_state(self, last_row: Mapping[str, Any]) -> None:
        q = self._stateful_quarantine()
        if not self.replay_on_resume or q is None:
            return
        data = encode_gate_state(
            q.state_dict(), rows=self._n_rows, last_row=last_row, config_sha256=self._config_sha256
        )
        atomic_write_bytes(self.gate_state_path, data)

    def _load_gate_state(self, rows: list[dict[str, Any]]) -> int:
        """Load ``gate_state.json`` into the quarantine; returns how many leading rows it covers (0: none usable)."""
        q = self._stateful_quarantine()
        if q is None:
            return 0
        if not self.gate_state_path.is_file():
            _log.info("%s: no saved gate state, replaying every recorded attempt", self.out_dir)
            return 0
        try:
            k, qs = decode_gate_state(self.gate_state_path.read_bytes(), rows, config_sha256=self._config_sha256)
            q.load_state_dict(qs)  # all or nothing: on failure the quarantine stays fresh
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            _log.warning(
                "%s: saved gate state not usable (%s); replaying every recorded attempt", self.gate_state_path, exc
            )
            return 0
        _log.info("restored the gate state after %d of %d recorded attempts", k, len(rows))
        return k


def fingerprint_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file (identifies a reference bank in ``run.json``)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
