"""The extension's headless batch: :mod:`simgap_ext.settings` -> scene source + reference bank + gate + runner.

The same assembly as ``simgap generate`` (:mod:`simgap_ext.cli.cmd_generate`), driven by the extension's carb
settings instead of command-line flags, plus two things a Kit session needs:

- cancellation: the batch runs in a worker thread (so Kit keeps updating); :func:`prepare_batch` wraps the scene
  source so that setting the plan's ``cancel`` event stops the run before its next render with
  :class:`BatchCancelled`. The runner writes files and manifest rows crash-safely, so a cancelled run is resumed
  with ``resume=true``;
- a self-reference bank for smoke runs: with neither ``bank_path`` nor ``real_dir`` the bank is built from
  ``reference_frames`` frames of the embedded backend rendered with seeds disjoint from the run's. The gate then
  checks consistency with the simulator itself, not the sim-to-real gap; a warning says so;
- the fitted sensor-effect model on Replicator frames: with ``backend=replicator`` and ``effects_profile`` set,
  every frame the source renders gets :func:`~simgap_ext.tune.apply_sensor_effects` before the gate, seeded by
  :func:`~simgap_ext.replicator.writer.frame_effect_seed` from the run seed, frame id, attempt and render product
  (``SimGapWriter`` also mixes in each trigger's ``reference_time``, which the batch's frames do not carry). The
  embedded backend takes the tuned profile as its ``preset`` instead (it renders the model itself).

Pure Python (no omni import): the extension calls :func:`prepare_batch` and :func:`run_batch`, tests call them too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SimGapError, SimGapInputError
from ..pipeline.assembly import KIT_NAMES, SELF_REFERENCE_SEED, assemble_run
from ..pipeline.run_dir import BANK_CACHE_NAME
from ..settings import BatchSettings, GateSettings, WriterSettings
from ..tune.apply import apply_sensor_effects
from .writer import frame_effect_seed, load_effects

__all__ = [
    "BANK_CACHE_NAME",
    "SELF_REFERENCE_SEED",
    "BatchCancelled",
    "BatchController",
    "BatchPlan",
    "resolve_backend",
    "prepare_batch",
    "run_batch",
]

_log = logging.getLogger(__name__)


class BatchCancelled(SimGapError):
    """The batch was cancelled (extension shutdown or a user request); the run can be resumed."""


def resolve_backend(name: str, *, render_product: str = "") -> str:
    """``"auto"`` -> ``"replicator"`` when ``omni.replicator.core`` is importable and a render product is
    configured, else ``"warp"``; other names are checked.

    Raises:
        SimGapInputError: ``"replicator"`` requested where Replicator is absent.
    """
    try:
        has_rep = importlib.util.find_spec("omni.replicator.core") is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        has_rep = False
    if name == "auto":
        return "replicator" if has_rep and render_product else "warp"
    if name == "replicator" and not has_rep:
        raise SimGapInputError(
            "setting /exts/simgap_ext/backend=replicator needs omni.replicator.core (Isaac Sim); this Kit has none: "
            "use backend=warp or auto"
        )
    if name not in ("warp", "replicator"):
        raise SimGapInputError(f"unknown backend {name!r} (choose from warp, replicator, auto)")
    return name


class _CancellableSource:
    """A scene source that raises :class:`BatchCancelled` once ``cancel`` is set (checked before each render)."""

    def __init__(self, source: Any, cancel: threading.Event) -> None:
        self._source = source
        self._cancel = cancel
        self.sensor_name = getattr(source, "sensor_name", "unknown")
        self.class_names = list(getattr(source, "class_names", ()) or ())
        self.rendered = 0

    def render(self, **kwargs: Any) -> dict[str, Any]:
        if self._cancel.is_set():
            raise BatchCancelled("SimGap batch cancelled")
        frame = self._source.render(**kwargs)
        self.rendered += 1
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


class _EffectsSource:
    """A scene source whose frames get the fitted sensor-effect model, the post-process ``SimGapWriter`` applies.

    Args:
        source: the scene source (Replicator frames in the sensor frame).
        model: the fitted :class:`~simgap_ext.tune.SensorEffectModel`.
        run_seed: the batch's seed (the writer's ``seed``).
        render_product: the render product the frames come from (part of the noise seed, as in the writer).
    """

    def __init__(self, source: Any, model: Any, run_seed: int, render_product: str) -> None:
        self._source = source
        self._model = model
        self._run_seed = int(run_seed)
        self._render_product = str(render_product)
        self.sensor_name = getattr(source, "sensor_name", "unknown")
        self.class_names = list(getattr(source, "class_names", ()) or ())
        self.applied = 0

    def render(self, **kwargs: Any) -> dict[str, Any]:
        frame = self._source.render(**kwargs)
        if not len(frame["data"]):  # nothing to post-process: the gate reports the empty capture
            return frame
        seed = frame_effect_seed(
            self._run_seed, int(kwargs.get("frame_id", 0)), int(kwargs.get("attempt", 0)), self._render_product
        )
        out = apply_sensor_effects(frame, self._model, seed, name=f"replicator frame {kwargs.get('frame_id', 0)}")
        self.applied += 1
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def _effects_wrapper(
    backend: str, replicator: WriterSettings | None, sensor: str, run_seed: int
) -> tuple[Any, dict[str, Any]]:
    """(source wrapper or None, what ``run.json`` records) for the writer settings' ``effects_profile``."""
    profile = (replicator.effects_profile or "").strip() if replicator else ""
    if not profile:
        return None, {}
    if backend != "replicator":
        _log.warning(
            "SimGap: effects_profile=%s applies to Replicator frames; the embedded backend renders with its preset "
            "(set /exts/simgap_ext/preset to the tuned profile to render with the fitted model)",
            profile,
        )
        return None, {}
    model, _ = load_effects(profile, replicator.annotator, sensor, owner="SimGap batch (backend=replicator)")
    # The model's content, not the file's bytes: a resume with another fitted model is refused, a re-saved or
    # moved file with the same model is not.
    digest = hashlib.sha256(json.dumps(model.to_dict(), sort_keys=True).encode()).hexdigest()
    extra = {"effects_profile": profile, "effects_model_sha256": digest}
    render_product = replicator.render_product
    return (lambda source: _EffectsSource(source, model, run_seed, render_product)), extra


@dataclass
class BatchPlan:
    """Everything a headless batch needs, assembled and validated before any frame renders.

    Attributes:
        runner: the :class:`~simgap_ext.pipeline.GenerationRunner`.
        n_frames: scheduled frames.
        resume: continue the run in ``out_dir``.
        out_dir: the run directory.
        backend: ``"warp"`` or ``"replicator"``.
        bank_path: the reference bank file used.
        self_reference: the bank was rendered from the embedded backend (smoke mode).
        tail_classes: the run's tail classes.
        g_threshold, js_threshold: the gate's thresholds (for the panel).
        cancel: set it to stop the batch before its next render.
    """

    runner: Any
    n_frames: int
    resume: bool
    out_dir: Path
    backend: str
    bank_path: Path
    self_reference: bool
    tail_classes: list[str]
    g_threshold: float
    js_threshold: float
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def stats(self) -> Any:
        """The run's :class:`~simgap_ext.pipeline.stats.AcceptanceStats` (what the panel observes)."""
        return self.runner.stats


def prepare_batch(
    batch: BatchSettings,
    gate: GateSettings | None = None,
    *,
    stats: Any = None,
    replicator: WriterSettings | None = None,
) -> BatchPlan:
    """Assemble source, bank, gate and runner from the extension settings (renders nothing of the run yet).

    Args:
        batch: batch settings.
        gate: gate overrides (default: none).
        stats: an empty :class:`~simgap_ext.pipeline.stats.AcceptanceStats` to record into (the panel's).
        replicator: Replicator settings (``render_product`` decides what ``backend="auto"`` picks).

    Returns:
        The plan; run it with :func:`run_batch`.

    Raises:
        SimGapInputError: unusable settings (missing bank/real dir, a bank of another sensor, an existing run
            without ``resume``, Replicator requested where absent).
    """
    from .._warp import resolve_device

    gate = gate or GateSettings()
    backend = resolve_backend(batch.backend, render_product=replicator.render_product if replicator else "")
    device = resolve_device(None if batch.device == "auto" else batch.device)
    cancel = threading.Event()
    with_effects, effects_extra = _effects_wrapper(backend, replicator, batch.sensor, batch.seed)

    def wrap(source: Any) -> Any:
        return _CancellableSource(with_effects(source) if with_effects else source, cancel)

    built = assemble_run(
        sensor=batch.sensor,
        out_dir=Path(batch.out_dir).expanduser(),
        backend=backend,
        preset=batch.preset,
        seed=batch.seed,
        max_retries=batch.max_retries,
        tail_percentile=gate.tail_percentile if gate.tail_percentile is not None else 20.0,
        target_per_class=getattr(batch, "target_per_class", None),
        bank_path=batch.bank_path or None,
        real_dir=batch.real_dir or None,
        self_reference_frames=batch.reference_frames,
        gate_config=gate.gate_config,
        gate_overrides={k: v for k, v in gate.overrides().items() if k != "tail_percentile"},
        device=device,
        resume=batch.resume,
        stats=stats,
        launched_by="kit-extension",
        wrap_source=wrap,
        names=KIT_NAMES,
        run_extra=effects_extra,
    )
    runner, config = built.runner, built.config
    out_dir, bank_path, self_ref, tails = runner.out_dir, built.bank_path, built.self_reference, built.tail_classes
    return BatchPlan(
        runner=runner,
        n_frames=batch.frames,
        resume=batch.resume,
        out_dir=out_dir,
        backend=backend,
        bank_path=bank_path,
        self_reference=self_ref,
        tail_classes=tails,
        g_threshold=config.g_threshold,
        js_threshold=config.js_threshold,
        cancel=cancel,
    )


def run_batch(plan: BatchPlan, *, progress: bool = False) -> Any:
    """Run a prepared batch to the end (blocking; the extension calls it in a worker thread).

    Returns:
        The runner's :class:`~simgap_ext.pipeline.GenerationSummary`.

    Raises:
        BatchCancelled: ``plan.cancel`` was set; what was recorded so far is consistent and resumable.
    """
    _log.info(
        "SimGap batch: %d frame(s), backend %s, out %s%s",
        plan.n_frames,
        plan.backend,
        plan.out_dir,
        " (resume)" if plan.resume else "",
    )
    return plan.runner.run(plan.n_frames, resume=plan.resume, progress=progress)


class BatchController:
    """Runs batches as asyncio tasks whose work happens in one worker thread; cancellable; observable.

    The extension owns one; its coroutine references this controller, never the ``IExt`` object, so that Kit
    can release a disabled extension while a cancelled task is still unwinding.

    Args:
        panel_model: a :class:`~simgap_ext.ui.panel_model.PanelModel` to attach each batch's stats to and to
            report status lines into (optional).
        on_finish: ``fn(exit_code)`` called when a batch ends (0 done, 1 cancelled or failed), e.g. Kit's
            ``post_quit`` for ``quit_on_finish``.
    """

    def __init__(self, panel_model: Any = None, *, on_finish: Any = None) -> None:
        self.panel_model = panel_model
        self.on_finish = on_finish
        self.task: Any = None
        self.plan: BatchPlan | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.stats: Any = None
        self.executor: Any = None

    @property
    def running(self) -> bool:
        """A batch task exists and has not finished."""
        return self.task is not None and not self.task.done()

    def _status(self, text: str) -> None:
        if self.panel_model is not None:
            self.panel_model.set_status(text)

    def start(
        self,
        batch: BatchSettings,
        gate: GateSettings | None = None,
        *,
        quit_code: bool = False,
        replicator: WriterSettings | None = None,
    ) -> Any:
        """Schedule a batch on the running asyncio loop; returns its task (result: summary, or None on failure).

        Args:
            batch, gate, replicator: the settings to run with.
            quit_code: call ``on_finish(code)`` when the batch ends.

        Raises:
            RuntimeError: a batch is already running.
        """
        import asyncio
        import concurrent.futures

        from ..pipeline.stats import AcceptanceStats

        if self.running:
            raise RuntimeError("a SimGap batch is already running")
        if self.executor is None:
            self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgap-batch")
        self.stats = AcceptanceStats()  # the runner needs an empty model; the panel follows the new one
        if self.panel_model is not None:
            self.panel_model.attach(self.stats)
        self.result = None
        self.error = None
        self.plan = None
        self.task = asyncio.ensure_future(self._run(batch, gate, quit_code, replicator))
        return self.task

    async def _run(
        self, batch: BatchSettings, gate: GateSettings | None, quit_code: bool, replicator: WriterSettings | None
    ) -> Any:
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        code = 1
        self._status("Preparing batch (reference bank, gate)...")
        try:
            prepare = functools.partial(prepare_batch, batch, gate, stats=self.stats, replicator=replicator)
            plan = self.plan = await loop.run_in_executor(self.executor, prepare)
            if self.panel_model is not None:
                self.panel_model.g_threshold = plan.g_threshold
                self.panel_model.js_threshold = plan.js_threshold
                self.panel_model.attach(self.stats, tail_classes=plan.tail_classes)
            self._status(f"Batch running: {plan.n_frames} frame(s) -> {plan.out_dir}")
            summary = await loop.run_in_executor(self.executor, run_batch, plan)
            c = summary.counts
            msg = (
                f"SimGap batch done: {c['attempts']} attempts, {c['accepted']} accepted, {c['rejected']} rejected, "
                f"{c['rerandomized']} re-randomized, {c['held_back']} held back; {summary.exported} scans in "
                f"{summary.out_dir}"
            )
            _log.info(msg)
            self._status(msg)
            self.result = summary
            code = 0
            return summary
        except (BatchCancelled, asyncio.CancelledError) as exc:
            self.error = exc if isinstance(exc, BatchCancelled) else BatchCancelled("SimGap batch task cancelled")
            _log.warning("SimGap batch cancelled; resume it with /exts/simgap_ext/resume=true")
            self._status("Batch cancelled (resumable).")
            return None
        except Exception as exc:  # noqa: BLE001 - reported in the log and the panel, never raised into Kit's loop
            self.error = exc
            _log.error("SimGap batch failed: %s: %s", type(exc).__name__, exc)
            self._status(f"Batch failed: {exc}")
            return None
        finally:
            if quit_code and self.on_finish is not None:
                self.on_finish(code)

    def shutdown(self) -> None:
        """Cancel a running batch (it stops before its next render) and wait for the worker thread to end."""
        if self.plan is not None:
            self.plan.cancel.set()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.executor is not None:
            # Waiting keeps the run's files and manifest consistent (the worker is at most one frame away). Not for
            # the replicator backend: its worker waits for renders on Kit's loop, which is this (blocked) thread;
            # it stops at its next render instead, and every row/file it wrote is complete either way.
            wait = self.plan is None or self.plan.backend != "replicator"
            self.executor.shutdown(wait=wait, cancel_futures=True)
            self.executor = None
        if self.panel_model is not None:
            self.panel_model.detach()
