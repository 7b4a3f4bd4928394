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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import SimGapInputError
from .adapters import (
    GENERIC_MODEL_OUTPUT_V60,
    POINTCLOUD,
    STABLE_ID_MAP_V60,
    adapt,
    iter_annotator_payloads,
    seed_class_ids,
    unusable_frame,
)
from .sink import GatedExportSink

try:
    import omni.replicator.core as _rep
    from omni.replicator.core import AnnotatorRegistry, Writer, WriterRegistry
except ImportError:  # plain Python / kernel-only Kit: no Replicator
    _rep = None
    Writer = None  # type: ignore[assignment,misc]

HAS_REPLICATOR = Writer is not None
WRITER_NAME = "SimGapWriter"

__all__ = ["HAS_REPLICATOR", "WRITER_NAME", "build_sink", "on_writer_created", "register_writer", "unregister_writer"]

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


if HAS_REPLICATOR:

    class SimGapWriter(Writer):
        """Replicator writer that scores each frame with the SimGap gate and exports only passing ones.

        Args:
            output_dir: export root (SemanticKITTI layout + ``manifest.jsonl``); needed unless ``sink`` is given.
            bank_path: reference bank for the gate; needed unless ``sink`` is given.
            sink: a ready :class:`GatedExportSink` (overrides ``output_dir``/``bank_path``/gate arguments).
            annotator: ``"pointcloud"`` (default) or an RTX LiDAR annotator name of
                :data:`~simgap_ext.replicator.adapters.ADAPTERS`.
            sensor: sensor profile name recorded in every frame.
            seed: seed recorded for frames (the orchestration sets it with :meth:`set_frame_context`).
            focus_classes: focus classes recorded for frames.
            id_to_labels: semantic id -> class for ``pointcloud`` payloads without ``idToLabels``.
            object_labels: RTX object id -> class name (mapping or callable) for the 4.5 / 5.x annotators.
            stable_id_map: 6.0 stable id -> prim path, used when the frame's ``StableIdMap`` payload is neither a
                mapping nor decodable by ``stable_id_decoder``.
            stable_id_decoder: turns the raw ``StableIdMap`` annotator buffer into ``{stable id: prim path}``.
            prim_labels: 6.0 prim path -> class name (mapping or callable).
            gmo_parser: turns a raw ``GenericModelOutput`` buffer into the parsed struct (default:
                ``isaacsim.sensors.experimental.rtx.parse_generic_model_output_data`` when importable).
            gate_config, device, stats, tail_classes, tail_percentile, max_retries: see :func:`build_sink`.
            rerandomize_event: custom OmniGraph event sent (``rep.utils.send_og_event``) when a rejected scene
                should be re-rendered; ``None`` disables it.
            **gate_overrides: :class:`~simgap_ext.gate.GateConfig` fields.
        """

        def __init__(
            self,
            output_dir: str | Path | None = None,
            bank_path: str | Path | None = None,
            *,
            sink: GatedExportSink | None = None,
            annotator: str = POINTCLOUD,
            sensor: str = "unknown",
            seed: int = 0,
            focus_classes: Sequence[str] = (),
            id_to_labels: Mapping[Any, Any] | None = None,
            object_labels: Any = None,
            stable_id_map: Mapping[int, str] | None = None,
            stable_id_decoder: Callable[[Any], Mapping[int, str]] | None = None,
            prim_labels: Any = None,
            gmo_parser: Callable[[Any], Any] | None = None,
            gate_config: str | Path | None = None,
            device: str | None = None,
            stats: Any = None,
            tail_classes: Sequence[str] | None = None,
            tail_percentile: float = 20.0,
            max_retries: int = 3,
            rerandomize_event: str | None = None,
            **gate_overrides: Any,
        ) -> None:
            from .adapters import ADAPTERS

            if annotator not in ADAPTERS:
                raise ValueError(
                    f"SimGapWriter: unsupported annotator {annotator!r} (supported: {', '.join(ADAPTERS)})"
                )
            self.version = __version__
            # The layout Isaac Sim's own writers use; write() also understands the others.
            self.data_structure = "annotator"
            self.annotator_name = annotator
            if annotator == POINTCLOUD:
                # Unlabelled points (ground, walls) are part of a LiDAR scene's statistics: keep them.
                self.annotators = [AnnotatorRegistry.get_annotator(POINTCLOUD, init_params={"includeUnlabelled": True})]
            elif annotator == GENERIC_MODEL_OUTPUT_V60:
                self.annotators = [
                    AnnotatorRegistry.get_annotator(GENERIC_MODEL_OUTPUT_V60),
                    AnnotatorRegistry.get_annotator(STABLE_ID_MAP_V60),
                ]
            else:
                self.annotators = [AnnotatorRegistry.get_annotator(annotator)]
            self.rerandomize_event = rerandomize_event
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
            self._stable_id_map = stable_id_map
            self._stable_id_decoder = stable_id_decoder
            self._prim_labels = prim_labels
            self._gmo_parser = gmo_parser
            # One class -> semantic id table for the whole export, so an id names the same class in every scan.
            self._class_ids = seed_class_ids(sink.exporter.id_to_labels, _preferred_class_ids())
            self._frame_id = 0
            self._attempt = 0
            self._retry_pending = False
            self.metadata = {"simgap_version": __version__, "annotator": annotator, "sensor": self.sensor}
            for callback in list(_created_listeners):
                try:
                    callback(self)
                except Exception:  # a broken listener (e.g. a UI) must not stop the capture
                    _log.exception("SimGapWriter creation listener %r failed", callback)

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
            if self._retry_pending:  # several render products of one scene: one re-render is enough
                return
            self._retry_pending = True
            _log.info("SimGapWriter: re-randomizing frame %s (attempt %d)", frame.get("frame_id"), self._attempt + 1)
            _rep.utils.send_og_event(self.rerandomize_event)

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
                return adapt(POINTCLOUD, payload, id_to_labels=self._id_to_labels, metadata=metadata)
            if self.annotator_name == GENERIC_MODEL_OUTPUT_V60:
                gmo = payload.get("data", payload) if isinstance(payload, Mapping) else payload
                if not isinstance(gmo, Mapping) and not hasattr(gmo, "numElements"):
                    gmo = self._parse_gmo(gmo)
                stable = self._stable_ids_for(rp_name, data)
                return adapt(
                    GENERIC_MODEL_OUTPUT_V60,
                    gmo,
                    stable_id_map=stable,
                    prim_labels=self._prim_labels,
                    metadata=metadata,
                    class_ids=self._class_ids,
                )
            return adapt(
                self.annotator_name,
                payload,
                object_labels=self._object_labels,
                metadata=metadata,
                class_ids=self._class_ids,
            )

        def _stable_ids_for(self, rp_name: str, data: Mapping[str, Any]) -> Mapping[int, str] | None:
            """This render product's stable id -> prim path map (the frame's StableIdMap payload when usable)."""
            for srp, payload in iter_annotator_payloads(data, STABLE_ID_MAP_V60):
                if srp != rp_name:
                    continue
                raw = payload.get("data", payload) if isinstance(payload, Mapping) else payload
                if isinstance(raw, Mapping):
                    return {int(k): str(v) for k, v in raw.items()}
                if self._stable_id_decoder is not None:
                    return self._stable_id_decoder(raw)
            return self._stable_id_map

        def _parse_gmo(self, raw: Any) -> Any:
            parser = self._gmo_parser
            if parser is None:
                from isaacsim.sensors.experimental.rtx import parse_generic_model_output_data as parser
            return parser(raw)

        def write(self, data: dict) -> None:
            """Gate and (if accepted) export this trigger's frame of every render product."""
            payloads = list(iter_annotator_payloads(data, self.annotator_name))
            if not payloads:
                _log.warning("SimGapWriter: no %r data in this frame (keys: %s)", self.annotator_name, sorted(data))
                return
            for rp_name, payload in payloads:
                try:
                    frame = self._adapt(rp_name, payload, data)
                except SimGapInputError as exc:
                    # Raising here would stop the whole Replicator capture for one bad payload: record it as an
                    # unusable attempt instead (manifest row + stats, reason named), like an empty RTX frame.
                    _log.warning("SimGapWriter: unreadable %r payload from %s: %s", self.annotator_name, rp_name, exc)
                    frame = unusable_frame(str(exc), metadata=self._metadata(rp_name), annotator=self.annotator_name)
                # A rejected frame is only recorded (manifest row, stats): nothing else to write for it.
                self.sink.submit(frame)
            if self._retry_pending:
                # Same scheduled scene, next attempt: the randomizer graph re-renders it on the custom event.
                self._retry_pending = False
                self._attempt += 1
            else:
                self._frame_id += 1
                self._attempt = 0

        def on_final_frame(self) -> None:
            """End of the capture: release the manifest handle."""
            super().on_final_frame()
            self.sink.flush()

        def detach(self) -> None:
            """Detach from the render products and reset the per-session counters."""
            super().detach()
            self.sink.flush()
            self.sink.reset_counts()
            self._frame_id = 0
            self._attempt = 0
            self._retry_pending = False

    __all__ += ["SimGapWriter"]


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
    except (KeyError, ValueError):
        pass
