"""``SimGapWriter``: a Replicator writer that gates every LiDAR / point-cloud frame before it is written.

Defined only where ``omni.replicator.core`` is importable (Isaac Sim, or the test stand-in in ``tests/stubs``);
elsewhere this module imports cleanly, :data:`HAS_REPLICATOR` is False and ``SimGapWriter`` does not exist.

Usage inside Isaac Sim::

    import omni.replicator.core as rep
    writer = rep.WriterRegistry.get("SimGapWriter")
    writer.initialize(output_dir="/data/run1", bank_path="/data/bank.npz", sensor="vlp-16",
                      rerandomize_event="simgap_rerandomize")
    writer.attach([render_product])

Each ``write(data)`` finds the requested annotator's payload per render product in any ``data_structure``
(``legacy``, ``annotator``, ``renderProduct``), turns it into the DESIGN.md frame with the adapter of that
annotator (:mod:`simgap_ext.replicator.adapters`) and submits it to a :class:`GatedExportSink` (gate -> export ->
manifest row -> stats). A rejected frame simply returns (Replicator has no return value that rejects a frame); when
a tail class failed or a class of the frame is in semantic quarantine, and retries remain
(:func:`~simgap_ext.pipeline.attempt.plan_retry`), the writer fires ``rerandomize_event`` so that a randomizer graph
triggered by ``rep.trigger.on_custom_event`` re-renders the scene with a new seed.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import SimGapInputError
from ..settings import read_setting
from ..tune.apply import apply_sensor_effects
from .adapters import (
    ADAPTERS,
    GENERIC_MODEL_OUTPUT_V60,
    POINTCLOUD,
    RTX_SCAN_BUFFER_V45,
    SEMANTIC_SEGMENTATION,
    STABLE_ID_MAP_V60,
    TIMELINE_NOT_PLAYING,
    adapt,
    annotator_for_isaac_version,
    annotator_init_params,
    iter_annotator_payloads,
    seed_class_ids,
    unusable_frame,
)
from .rtx_ids import parse_stable_id_map
from .rtx_settings import aux_output_level, check_rtx_id_settings, detect_isaac_version, uses_stable_ids
from .semantics import stage_prim_labels
from .sink import GatedExportSink
from .worker import GateWorker

try:
    import omni.replicator.core as _rep
    from omni.replicator.core import AnnotatorRegistry, Writer, WriterRegistry
except ImportError:  # plain Python / kernel-only Kit: no Replicator
    _rep = None
    Writer = None  # type: ignore[assignment,misc]

try:  # where Replicator defines it (omni/replicator/core/scripts/writers.py, Replicator 1.12.x)
    from omni.replicator.core.scripts.writers import WriterRegistryError
except ImportError:
    WriterRegistryError = KeyError  # type: ignore[assignment,misc]

HAS_REPLICATOR = Writer is not None
WRITER_NAME = "SimGapWriter"

__all__ = [
    "HAS_REPLICATOR",
    "WRITER_NAME",
    "build_sink",
    "frame_effect_seed",
    "load_effects",
    "on_writer_created",
    "register_writer",
    "unregister_writer",
]

_log = logging.getLogger(__name__)

# Called with every new SimGapWriter: Replicator constructs writers itself (WriterRegistry.get + initialize), so
# this is how the extension learns of one and points Window > SimGap at its statistics.
_created_listeners: list[Callable[[Any], None]] = []


def on_writer_created(callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``callback(writer)`` whenever a ``SimGapWriter`` is constructed (after its sink is ready).

    A failing callback is logged, never raised into Replicator. Returns a callable that removes the callback.
    """
    _created_listeners.append(callback)

    def remove() -> None:
        if callback in _created_listeners:
            _created_listeners.remove(callback)

    return remove


def _preferred_class_ids() -> dict[str, int]:
    """The embedded backend's class numbering (SemanticKITTI-like), so Replicator and Warp exports agree."""
    from ..backends.warp.labels import CLASS_IDS

    return dict(CLASS_IDS)


def build_sink(
    output_dir: str | Path,
    *,
    bank_path: str | Path,
    sensor: str | None = None,
    gate_config: str | Path | None = None,
    device: str | None = None,
    stats: Any = None,
    tail_classes: Sequence[str] | None = None,
    tail_percentile: float = 20.0,
    max_retries: int = 3,
    on_rerandomize: Callable[..., None] | None = None,
    **gate_overrides: Any,
) -> GatedExportSink:
    """A :class:`GatedExportSink` over a saved reference bank.

    Args:
        output_dir: export root.
        bank_path: a ``ReferenceBank.save`` file.
        sensor: the frames' sensor; a bank of another sensor is refused (``None``: not checked).
        gate_config: gate TOML (default ``config/gate.toml``).
        device: Warp device for the gate.
        stats: an :class:`~simgap_ext.pipeline.stats.AcceptanceStats` to share (e.g. with the panel).
        tail_classes: explicit tail classes; default: :func:`~simgap_ext.gate.identify_tail_classes` of the bank.
        tail_percentile: percentile for the default tail classes.
        max_retries: re-randomizations per scene.
        on_rerandomize: see :class:`GatedExportSink`.
        **gate_overrides: :class:`~simgap_ext.gate.GateConfig` fields (``g_threshold``, ``js_threshold``, ...).
    """
    from ..pipeline.assembly import assemble_sink

    return assemble_sink(
        output_dir,
        bank_path=bank_path,
        sensor=sensor,
        gate_config=gate_config,
        device=device,
        stats=stats,
        tail_classes=tail_classes,
        tail_percentile=tail_percentile,
        max_retries=max_retries,
        on_rerandomize=on_rerandomize,
        gate_overrides=gate_overrides,
    )


def frame_effect_seed(
    run_seed: int, frame_id: int, attempt: int = 0, render_product: str = "", reference_time: Any = None
) -> int:
    """The sensor-effect noise seed of one writer frame: a deterministic function of where the frame sits.

    The same capture (run seed, frame numbering, render products, simulation times) gives the same noisy frames;
    two render products, a re-randomized attempt or another simulation time give independent noise.

    Args:
        run_seed: the writer's seed (``seed=`` / :meth:`SimGapWriter.set_frame_context`); any int.
        frame_id: the writer's frame number.
        attempt: re-randomization attempt of the frame.
        render_product: the render product path the frame came from.
        reference_time: Replicator's ``reference_time`` of the trigger (rational pair or seconds), or None.

    Returns:
        A non-negative int < 2**63 for :func:`~simgap_ext.tune.apply_sensor_effects`.
    """
    ref = _seconds(reference_time)
    ref_word = 0 if ref is None else 1 + (round(ref * 1e9) & 0x7FFFFFFFFFFFFFFF)
    mask = 0xFFFFFFFFFFFFFFFF  # SeedSequence takes non-negative words: a negative seed wraps like a uint64
    words = [
        int(run_seed) & mask,
        int(frame_id) & mask,
        int(attempt) & mask,
        zlib.crc32(render_product.encode()),
        ref_word,
    ]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def load_effects(
    effects: str | os.PathLike[str] | None, annotator: str, sensor: str, *, owner: str = "SimGapWriter"
) -> tuple[Any, str | None]:
    """The fitted model of ``effects`` (a tuned profile), refused where the frames are not in the sensor frame.

    ``owner`` names the caller in messages (the writer, or the headless batch's Replicator source).
    """
    if effects is None or not os.fspath(effects).strip():
        return None, None
    if annotator == POINTCLOUD:
        raise SimGapInputError(
            f"{owner}: effects={os.fspath(effects)!r} needs sensor-frame points, but the {POINTCLOUD!r} "
            "annotator delivers world-frame points without the sensor pose; use an RTX LiDAR annotator "
            "(annotator='auto'), or leave effects unset"
        )
    from ..tune.load import load_effect_model

    model, profile, preset = load_effect_model(os.fspath(effects).strip())
    if sensor not in ("unknown", profile.name) and not profile.name.startswith(sensor):
        _log.warning(
            "%s: effects profile %s was tuned for %r, the frames are %r: points outside its %d-beam fan are dropped",
            owner,
            os.fspath(effects),
            profile.name,
            sensor,
            model.channels,
        )
    return model, preset


if HAS_REPLICATOR:

    class SimGapWriter(Writer):
        """Replicator writer that scores each frame with the SimGap gate and exports only passing ones.

        Args:
            output_dir: export root (SemanticKITTI layout + ``manifest.jsonl``); needed unless ``sink`` is given.
            bank_path: reference bank for the gate; needed unless ``sink`` is given.
            sink: a ready :class:`GatedExportSink` (overrides ``output_dir``/``bank_path``/gate arguments).
            annotator: ``"pointcloud"`` (default), an RTX LiDAR annotator name of
                :data:`~simgap_ext.replicator.adapters.ADAPTERS`, or ``"auto"``: the full-scan annotator of the
                running Isaac Sim (:func:`~simgap_ext.replicator.adapters.annotator_for_isaac_version`).
            isaac_version: Isaac Sim version (default: detected; decides id layouts and init parameters).
            sensor: sensor profile name recorded in every frame.
            seed: seed recorded for frames (the orchestration sets it with :meth:`set_frame_context`).
            focus_classes: focus classes recorded for frames.
            id_to_labels: semantic id -> class for ``pointcloud`` payloads when neither the payload nor the
                ``semantic_segmentation`` annotator names a class.
            object_labels: 32-bit RTX object id (4.5 / 5.0) or stable id -> class name (mapping or callable).
            stable_id_map: stable id -> prim path, used when the frame's ``StableIdMap`` payload is empty.
            stable_id_decoder: turns the raw ``StableIdMap`` buffer into ``{stable id: prim path}`` (default
                :func:`~simgap_ext.replicator.rtx_ids.parse_stable_id_map`).
            prim_labels: prim path -> class name (mapping or callable); default: the stage's semantics
                (:func:`~simgap_ext.replicator.semantics.stage_prim_labels` over ``omni.usd``'s stage).
            gmo_parser: turns a raw ``GenericModelOutput`` buffer into the parsed struct (default:
                ``isaacsim.sensors.experimental.rtx.parse_generic_model_output_data`` when importable).
            check_settings: at :meth:`attach`, refuse an RTX setup that cannot deliver object ids
                (:func:`~simgap_ext.replicator.rtx_settings.check_rtx_id_settings`), naming the fix.
            get_setting: carb setting getter for that check (default ``carb.settings.get_settings().get``).
            get_stage: returns the USD stage (default ``omni.usd.get_context().get_stage``).
            sim_clock: returns the current simulation time in seconds (default: ``omni.timeline``'s current time);
                re-randomization is keyed on it (see :meth:`write`).
            queue_size: frames waiting for the background gate before ``write`` blocks.
            gate_config, device, stats, tail_classes, tail_percentile, max_retries: see :func:`build_sink`.
            rerandomize_event: custom OmniGraph event sent (``rep.utils.send_og_event``) when a rejected scene
                should be re-rendered; ``None`` disables it.
            effects: a tuned sensor profile (``simgap tune --out tuned.toml``): its fitted sensor-effect model is
                applied to every frame before the gate (:func:`~simgap_ext.tune.apply_sensor_effects`, seeded per
                frame by :func:`frame_effect_seed`); ``None``: the carb setting
                ``/exts/simgap_ext/effects_profile``; ``""``: none. Refused with the ``pointcloud`` annotator
                (world-frame points).
            **gate_overrides: :class:`~simgap_ext.gate.GateConfig` fields.
        """

        def __init__(
            self,
            output_dir: str | Path | None = None,
            bank_path: str | Path | None = None,
            *,
            sink: GatedExportSink | None = None,
            annotator: str = POINTCLOUD,
            isaac_version: str | None = None,
            sensor: str = "unknown",
            seed: int = 0,
            focus_classes: Sequence[str] = (),
            id_to_labels: Mapping[Any, Any] | None = None,
            object_labels: Any = None,
            stable_id_map: Mapping[int, str] | None = None,
            stable_id_decoder: Callable[[Any], Mapping[int, str]] | None = None,
            prim_labels: Any = None,
            gmo_parser: Callable[[Any], Any] | None = None,
            check_settings: bool = True,
            get_setting: Callable[[str], Any] | None = None,
            get_stage: Callable[[], Any] | None = None,
            sim_clock: Callable[[], float] | None = None,
            queue_size: int = 4,
            gate_config: str | Path | None = None,
            device: str | None = None,
            stats: Any = None,
            tail_classes: Sequence[str] | None = None,
            tail_percentile: float = 20.0,
            max_retries: int = 3,
            rerandomize_event: str | None = None,
            effects: str | Path | None = None,
            **gate_overrides: Any,
        ) -> None:
            self.isaac_version = isaac_version or detect_isaac_version()
            if annotator == "auto":
                annotator = annotator_for_isaac_version(self.isaac_version or "6.0")
            if annotator not in ADAPTERS:
                raise ValueError(
                    f"SimGapWriter: unsupported annotator {annotator!r} (supported: auto, {', '.join(ADAPTERS)})"
                )
            self.version = __version__
            # The layout Isaac Sim's own writers use; write() also understands the others.
            self.data_structure = "annotator"
            self.annotator_name = annotator
            self.annotators = self._request_annotators(annotator)
            self.rerandomize_event = rerandomize_event
            self._get_setting = get_setting or _default_setting_getter()
            if effects is None and self._get_setting is not None:
                effects = read_setting(self._get_setting, "effects_profile")
            # Loaded before the sink so that a bad profile fails before anything is written.
            self.effects_model, self.effects_preset = load_effects(effects, annotator, str(sensor))
            self.effects_profile = None if self.effects_model is None else os.fspath(effects)
            if sink is None:
                if output_dir is None or bank_path is None:
                    raise ValueError("SimGapWriter needs output_dir and bank_path (or a ready sink=)")
                sink = build_sink(
                    output_dir,
                    bank_path=bank_path,
                    sensor=None if sensor == "unknown" else sensor,
                    gate_config=gate_config,
                    device=device,
                    stats=stats,
                    tail_classes=tail_classes,
                    tail_percentile=tail_percentile,
                    max_retries=max_retries,
                    **gate_overrides,
                )
            if self.rerandomize_event:
                sink.on_rerandomize = self._request_rerandomize
            elif sink.max_retries:
                # Without an event nothing re-renders a scene: its rows must not claim "rerandomized".
                _log.info("SimGapWriter: no rerandomize_event, rejected frames are final (max_retries=0)")
                sink.max_retries = 0
            self.sink = sink
            self.stats = sink.stats
            self.sensor = str(sensor)
            self._seed = int(seed)
            self._focus = list(focus_classes)
            self._id_to_labels = id_to_labels
            self._object_labels = object_labels
            self._stable_id_map = dict(stable_id_map or {})
            self._stable_id_decoder = stable_id_decoder or parse_stable_id_map
            self._get_stage = get_stage or _default_stage_getter()
            self._prim_labels = prim_labels
            if prim_labels is None and self._get_stage is not None:
                self._prim_labels = stage_prim_labels(self._get_stage)
            self._gmo_parser = gmo_parser
            self._check_settings = bool(check_settings)
            self._timeline = _default_timeline()
            if sim_clock is None and self._timeline is not None:
                sim_clock = lambda tl=self._timeline: float(tl.get_current_time())  # noqa: E731
            self._clock = sim_clock
            # One class -> semantic id table for the whole export, so an id names the same class in every scan.
            self._class_ids = seed_class_ids(sink.exporter.id_to_labels, _preferred_class_ids())
            self._frame_id = 0
            self._attempt = 0
            self._retry_lock = threading.Lock()
            self._retry_wanted = False
            self._stale_until: float | None = None
            self._last_scan_stamp: dict[str, int] = {}
            self.skipped = {"stale": 0, "repeated_scan": 0}
            self._worker = GateWorker(self._gate, maxsize=queue_size)
            self.metadata = {"simgap_version": __version__, "annotator": annotator, "sensor": self.sensor}
            if self.effects_profile is not None:
                self.metadata["effects_profile"] = self.effects_profile
            for callback in list(_created_listeners):
                try:
                    callback(self)
                except Exception:  # a broken listener (e.g. a UI) must not stop the capture
                    _log.exception("SimGapWriter creation listener %r failed", callback)

        def _request_annotators(self, annotator: str) -> list[Any]:
            """The annotators this writer needs, created with the init parameters that make them deliver ids."""
            params = annotator_init_params(annotator, self.isaac_version)
            out = [AnnotatorRegistry.get_annotator(annotator, init_params=params)]
            if annotator == POINTCLOUD:
                # pointcloud's info holds numeric ids only; semantic_segmentation's idToLabels names them.
                out.append(AnnotatorRegistry.get_annotator(SEMANTIC_SEGMENTATION, init_params={"colorize": False}))
            elif uses_stable_ids(annotator, self.isaac_version):
                out.append(AnnotatorRegistry.get_annotator(STABLE_ID_MAP_V60))
            return out

        # ------------------------------------------------------------------ orchestration hooks
        def set_frame_context(
            self, *, seed: int | None = None, focus_classes: Sequence[str] | None = None, attempt: int | None = None
        ) -> None:
            """Record the randomizer's seed / focus / attempt for the frames that follow."""
            if seed is not None:
                self._seed = int(seed)
            if focus_classes is not None:
                self._focus = list(focus_classes)
            if attempt is not None:
                self._attempt = int(attempt)

        def _request_rerandomize(self, frame: Mapping[str, Any], decision: Any) -> None:
            # Runs on the gate worker: only note it; write() sends the event from Kit's main thread.
            with self._retry_lock:
                self._retry_wanted = True

        def settings_problems(self, render_products: Sequence[str]) -> list[str]:
            """What keeps this writer's RTX annotator from delivering object ids on ``render_products``."""
            stage = self._get_stage() if self._get_stage is not None else None
            levels = {str(rp): aux_output_level(stage, str(rp)) for rp in render_products}
            getter = self._get_setting or (lambda key: None)
            return check_rtx_id_settings(
                self.annotator_name, isaac_version=self.isaac_version, get_setting=getter, aux_levels=levels
            )

        def attach(self, render_products: Any, trigger: Any = "omni.replicator.core.OgnOnFrame") -> None:
            """Attach to render products after checking that RTX object ids can arrive (see ``check_settings``).

            Raises:
                SimGapInputError: a missing setting or a too-low aux output level, naming the fix.
            """
            rps = render_products if isinstance(render_products, list | tuple) else [render_products]
            names = [str(getattr(rp, "path", rp)) for rp in rps]
            if self._check_settings and self.annotator_name != POINTCLOUD:
                if self._get_setting is None:
                    _log.warning("SimGapWriter: carb settings unavailable, RTX id settings not checked")
                else:
                    problems = self.settings_problems(names)
                    if problems:
                        raise SimGapInputError("SimGapWriter cannot read object ids: " + "; ".join(problems))
            super().attach(render_products, trigger=trigger)

        # ------------------------------------------------------------------ Writer API
        def _metadata(self, rp_name: str) -> dict[str, Any]:
            return {
                "frame_id": self._frame_id,
                "seed": self._seed,
                "sensor": self.sensor,
                "focus_classes": self._focus,
                "attempt": self._attempt,
                "render_product": rp_name,
            }

        def _adapt(self, rp_name: str, payload: Any, data: Mapping[str, Any]) -> dict[str, Any]:
            metadata = self._metadata(rp_name)
            if self.annotator_name == POINTCLOUD:
                return adapt(POINTCLOUD, payload, id_to_labels=self._labels_for(rp_name, data), metadata=metadata)
            if self.annotator_name == GENERIC_MODEL_OUTPUT_V60:
                gmo = payload.get("data", payload) if isinstance(payload, Mapping) else payload
                if not isinstance(gmo, Mapping) and not hasattr(gmo, "numElements"):
                    gmo = self._parse_gmo(gmo)
                return adapt(
                    GENERIC_MODEL_OUTPUT_V60,
                    gmo,
                    stable_id_map=self._stable_ids_for(rp_name, data),
                    prim_labels=self._prim_labels,
                    object_labels=self._object_labels,
                    metadata=metadata,
                    class_ids=self._class_ids,
                )
            kwargs: dict[str, Any] = {"object_labels": self._object_labels}
            if self.annotator_name != RTX_SCAN_BUFFER_V45:
                kwargs |= {"stable_id_map": self._stable_ids_for(rp_name, data), "prim_labels": self._prim_labels}
            return adapt(self.annotator_name, payload, metadata=metadata, class_ids=self._class_ids, **kwargs)

        def _labels_for(self, rp_name: str, data: Mapping[str, Any]) -> Mapping[Any, Any] | None:
            """This render product's semantic id -> label map from ``semantic_segmentation`` (else the fallback)."""
            for srp, payload in iter_annotator_payloads(data, SEMANTIC_SEGMENTATION):
                if srp == rp_name and isinstance(payload, Mapping):
                    info = payload.get("info")
                    labels = (info if isinstance(info, Mapping) else payload).get("idToLabels")
                    if labels:
                        return labels
            return self._id_to_labels

        def _stable_ids_for(self, rp_name: str, data: Mapping[str, Any]) -> Mapping[int, str]:
            """Stable id -> prim path: this frame's ``StableIdMap`` merged into what earlier frames delivered."""
            for srp, payload in iter_annotator_payloads(data, STABLE_ID_MAP_V60):
                if srp != rp_name or payload is None:
                    continue
                raw = payload.get("data", payload) if isinstance(payload, Mapping) else payload
                parsed = dict(raw) if isinstance(raw, Mapping) else self._stable_id_decoder(raw)
                self._stable_id_map.update({int(k): str(v) for k, v in parsed.items()})
            return self._stable_id_map

        def _parse_gmo(self, raw: Any) -> Any:
            parser = self._gmo_parser
            if parser is None:
                from isaacsim.sensors.experimental.rtx import parse_generic_model_output_data as parser
            return parser(raw)

        def _is_stale(self, data: Mapping[str, Any]) -> bool:
            """A frame rendered before the last re-randomization event took effect (its reference time is not
            later than the simulation time the event was sent at): the old scene, not the retry."""
            if self._stale_until is None:
                return False
            ref = _seconds(data.get("reference_time"))
            if ref is None or ref > self._stale_until:
                self._stale_until = None
                return False
            return True

        def _fire_pending_retry(self, data: Mapping[str, Any]) -> bool:
            with self._retry_lock:
                wanted, self._retry_wanted = self._retry_wanted, False
            if not wanted:
                return False
            now = self._clock() if self._clock is not None else None
            # Without a clock, the newest reference time seen stands in for "now" (one frame of lag assumed).
            self._stale_until = now if now is not None else _seconds(data.get("reference_time"))
            _log.info("SimGapWriter: re-randomizing frame %d (attempt %d)", self._frame_id, self._attempt + 1)
            _rep.utils.send_og_event(self.rerandomize_event)
            self._attempt += 1
            return True

        def write(self, data: dict) -> None:
            """Adapt this trigger's payloads on the main thread and hand them to the background gate.

            Replicator may hand over data older than the current simulation time (``Writer.get_data``'s note in
            Replicator's ``scripts/writers.py``). With a ``rerandomize_event``, a scene's next attempt is therefore
            the first frame whose ``reference_time`` is later than the simulation time the event was sent at;
            frames in between show the rejected scene again and are skipped (``skipped["stale"]``). The previous
            frame's decision is awaited before numbering this one only in that mode.
            """
            before = (self._frame_id, self._attempt, self._frame_started, self._next_is_retry)
            advance = True
            if self.rerandomize_event:
                self._worker.wait()  # the previous scene's decision decides this frame's number
                if self._fire_pending_retry(data):
                    self._next_is_retry = True
                if self._is_stale(data):
                    self.skipped["stale"] += 1
                    return
                advance = not self._next_is_retry
                self._next_is_retry = False
            if advance and self._frame_started:
                self._frame_id += 1
                self._attempt = 0
            payloads = list(iter_annotator_payloads(data, self.annotator_name))
            if not payloads:
                _log.warning("SimGapWriter: no %r data in this frame (keys: %s)", self.annotator_name, sorted(data))
                self._frame_started = False
                return
            self._frame_started = True
            submitted = 0
            for rp_name, payload in payloads:
                try:
                    frame = self._adapt(rp_name, payload, data)
                except SimGapInputError as exc:
                    # Raising here would stop the whole Replicator capture for one bad payload: record it as an
                    # unusable attempt instead (manifest row + stats, reason named), like an empty RTX frame.
                    _log.warning("SimGapWriter: unreadable %r payload from %s: %s", self.annotator_name, rp_name, exc)
                    frame = unusable_frame(str(exc), metadata=self._metadata(rp_name), annotator=self.annotator_name)
                if self.annotator_name != POINTCLOUD and not len(frame["data"]) and self._timeline_stopped():
                    frame["adapter_issues"].append(TIMELINE_NOT_PLAYING)
                stamp = frame.get("scan_timestamp_ns")
                if stamp is not None and self._last_scan_stamp.get(rp_name) == stamp:
                    # GenericModelOutput repeats the last finished scan until the next one completes: score once.
                    self.skipped["repeated_scan"] += 1
                    continue
                if stamp is not None:
                    self._last_scan_stamp[rp_name] = stamp
                # Replicator reuses its buffers after write() returns: the worker gets its own copy.
                seed = None
                if self.effects_model is not None:
                    seed = frame_effect_seed(
                        self._seed, self._frame_id, self._attempt, rp_name, data.get("reference_time")
                    )
                self._worker.submit((_detached(frame), seed, self._metadata(rp_name)))
                submitted += 1
            if not submitted:  # only repeats of scans already scored: this trigger is not a new frame
                self._frame_id, self._attempt, self._frame_started, self._next_is_retry = before

        _frame_started = False
        _next_is_retry = False

        def _gate(self, item: tuple[dict[str, Any], int | None, dict[str, Any]]) -> Any:
            """Worker thread: the sensor-effect post-process (when configured), then gate -> export."""
            frame, seed, metadata = item
            if seed is not None and len(frame["data"]):
                try:
                    frame = apply_sensor_effects(frame, self.effects_model, seed)
                except SimGapInputError as exc:
                    # e.g. a world-frame RTX frame: recorded as unusable (row + stats), never raised into Kit.
                    _log.warning("SimGapWriter: sensor effects failed on frame %d: %s", metadata["frame_id"], exc)
                    frame = unusable_frame(f"sensor effects: {exc}", metadata=metadata, annotator=self.annotator_name)
            return self.sink.submit(frame)

        def _timeline_stopped(self) -> bool:
            return self._timeline is not None and not self._timeline.is_playing()

        def wait_until_idle(self) -> None:
            """Block until every frame handed to the background gate is scored and exported."""
            self._worker.wait()

        def on_final_frame(self) -> None:
            """End of the capture: finish the queued frames and release the manifest handle."""
            super().on_final_frame()
            self._worker.wait()
            self.sink.flush()

        def detach(self) -> None:
            """Detach from the render products and reset the per-session counters."""
            super().detach()
            self._worker.wait()
            self.sink.flush()
            self.sink.reset_counts()
            self._frame_id = 0
            self._attempt = 0
            self._frame_started = False
            self._next_is_retry = False
            self._stale_until = None
            self._last_scan_stamp.clear()
            with self._retry_lock:
                self._retry_wanted = False

    __all__ += ["SimGapWriter"]


def _seconds(ref: Any) -> float | None:
    """Replicator's ``reference_time`` (rational ``(numerator, denominator)`` or seconds) in seconds."""
    if ref is None:
        return None
    if isinstance(ref, tuple | list) and len(ref) == 2:
        num, den = ref
        return float(num) / float(den) if den else None
    try:
        return float(ref)
    except (TypeError, ValueError):
        return None


def _detached(frame: dict[str, Any]) -> dict[str, Any]:
    out = dict(frame)
    out["data"] = np.array(frame["data"], copy=True)
    info = dict(frame["info"])
    for key in ("pointSemantic", "pointInstance"):
        info[key] = np.array(info[key], copy=True)
    out["info"] = info
    if frame.get("intensity") is not None:
        out["intensity"] = np.array(frame["intensity"], copy=True)
    return out


def _default_stage_getter() -> Callable[[], Any] | None:
    try:
        import omni.usd
    except ImportError:
        return None
    return lambda: omni.usd.get_context().get_stage()


def _default_setting_getter() -> Callable[[str], Any] | None:
    try:
        import carb.settings
    except ImportError:
        return None
    settings = carb.settings.get_settings()
    return settings.get


def _default_timeline() -> Any:
    try:
        import omni.timeline
    except ImportError:
        return None
    return omni.timeline.get_timeline_interface()


def register_writer() -> bool:
    """Register ``SimGapWriter`` with Replicator's ``WriterRegistry``; False when Replicator is absent."""
    if not HAS_REPLICATOR:
        return False
    WriterRegistry.register(SimGapWriter)
    return True


def unregister_writer() -> None:
    """Undo :func:`register_writer` (no-op when Replicator is absent or the writer is not registered)."""
    if not HAS_REPLICATOR:
        return
    try:
        WriterRegistry.unregister(WRITER_NAME)
    except WriterRegistryError:  # not registered (Replicator raises this, not KeyError)
        pass
