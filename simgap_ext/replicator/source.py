"""``ReplicatorSceneSource``: the ``"replicator"`` scene source (pull frames from a Replicator graph).

:class:`~simgap_ext.pipeline.GenerationRunner` pulls frames with ``render(seed=..., focus_classes=..., ...)``. Here
one render = set Replicator's global seed, publish the focus classes, fire the randomizer's custom event, step the
orchestrator once, read the annotator attached to the LiDAR / depth render product and adapt its payload
(:mod:`simgap_ext.replicator.adapters`). The user's randomizer graph listens with
``rep.trigger.on_custom_event(event_name=randomize_event)``.

Timeline: RTX sensors only produce data while the timeline plays, so for RTX annotators the source plays it and
steps with ``pause_timeline=False``; the camera ``pointcloud`` annotator is stepped with the timeline paused, as
Replicator's SDG examples do. The ``pointcloud`` path reads ``semantic_segmentation``'s ``idToLabels`` for class
names; the stable-id RTX paths read ``StableIdMap`` (see :mod:`.adapters`).

Threads: Replicator must be driven from Kit's main thread, while the extension runs the batch in a worker thread
(so that Kit keeps updating). Given Kit's asyncio ``loop``, :meth:`render` called from another thread schedules
:meth:`render_async` on that loop and waits for it; called without a loop (a standalone ``SimulationApp`` script)
it steps synchronously with ``rep.orchestrator.step``.

Imports ``omni.replicator.core`` lazily, in the constructor: the module itself imports anywhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import SimGapInputError
from .adapters import (
    ADAPTERS,
    GENERIC_MODEL_OUTPUT_V60,
    POINTCLOUD,
    SEMANTIC_SEGMENTATION,
    STABLE_ID_MAP_V60,
    adapt,
    annotator_for_isaac_version,
    annotator_init_params,
    seed_class_ids,
)
from .rtx_ids import parse_stable_id_map
from .rtx_settings import detect_isaac_version, uses_stable_ids
from .semantics import stage_prim_labels

__all__ = ["ReplicatorSceneSource", "DEFAULT_RANDOMIZE_EVENT"]

DEFAULT_RANDOMIZE_EVENT = "simgap_randomize"


class ReplicatorSceneSource:
    """A :class:`~simgap_ext.backends.SceneSource` over a Replicator render product.

    Args:
        sensor: sensor profile name (recorded in frames; the profile must exist).
        render_product: path of the LiDAR / depth camera render product the annotator attaches to.
        preset: accepted for interface parity with the warp source (the Isaac Sim sensor config decides effects).
        device: unused (Replicator decides); accepted for interface parity.
        annotator: annotator name (a key of :data:`~simgap_ext.replicator.adapters.ADAPTERS`), or ``"auto"`` for
            the running Isaac Sim's full-scan RTX annotator.
        randomize_event: custom event the randomizer graph triggers on.
        class_names: classes the scene can contain (what the runner may use as focus).
        loop: Kit's asyncio loop, for renders requested from a worker thread.
        rt_subframes: ``rt_subframes`` of ``orchestrator.step`` (more = fewer accumulation artefacts).
        timeout_s: longest wait for one render from a worker thread.
        on_focus: ``fn(focus_classes, seed)`` called before the event (the extension writes them to carb settings
            ``/exts/simgap_ext/runtime/*`` for the randomizer graph to read).
        adapter_kwargs: passed to the adapter (``id_to_labels``, ``object_labels``, ``stable_id_map``,
            ``prim_labels``).
        isaac_version: Isaac Sim version (default: detected), for annotator init parameters and id layouts.
        timeline: ``omni.timeline``'s interface (default: imported lazily for RTX annotators).
    """

    def __init__(
        self,
        *,
        sensor: str,
        render_product: str,
        preset: str = "realistic",
        device: str | None = None,
        annotator: str = POINTCLOUD,
        randomize_event: str = DEFAULT_RANDOMIZE_EVENT,
        class_names: Sequence[str] = (),
        loop: asyncio.AbstractEventLoop | None = None,
        rt_subframes: int = 1,
        timeout_s: float = 120.0,
        on_focus: Callable[[list[str], int], None] | None = None,
        adapter_kwargs: Mapping[str, Any] | None = None,
        isaac_version: str | None = None,
        timeline: Any = None,
    ) -> None:
        import omni.replicator.core as rep

        from ..sensors import load_sensor_profile

        if not render_product:
            raise SimGapInputError(
                "replicator scene source: no render product (set /exts/simgap_ext/render_product to the LiDAR's "
                "render product path)"
            )
        isaac_version = isaac_version or detect_isaac_version()
        if annotator == "auto":  # the full-scan RTX annotator of the running Isaac Sim
            annotator = annotator_for_isaac_version(isaac_version or "6.0")
        if annotator not in ADAPTERS:
            raise SimGapInputError(f"replicator scene source: no adapter for annotator {annotator!r}")
        self._rep = rep
        self.profile = load_sensor_profile(sensor)
        self.sensor_name = self.profile.name
        self.class_names = list(class_names)
        self.preset = preset
        self.render_product = str(render_product)
        self.annotator_name = annotator
        self.randomize_event = randomize_event
        self.rt_subframes = int(rt_subframes)
        self.timeout_s = float(timeout_s)
        self.on_focus = on_focus
        self.adapter_kwargs = dict(adapter_kwargs or {})
        if annotator != POINTCLOUD:
            # RTX adapters number classes themselves: one table for every frame of this source.
            from ..backends.warp.labels import CLASS_IDS

            self.adapter_kwargs.setdefault("class_ids", seed_class_ids(None, CLASS_IDS))
        self._loop = loop
        self._loop_thread: int | None = None
        self.isaac_version = isaac_version
        self._rtx = annotator != POINTCLOUD
        if self._rtx and timeline is None:
            import omni.timeline

            timeline = omni.timeline.get_timeline_interface()
        self._timeline = timeline
        params = annotator_init_params(annotator, self.isaac_version)
        self.annotator = rep.AnnotatorRegistry.get_annotator(annotator, init_params=params)
        self.annotator.attach([self.render_product])
        self._extra: Any = None
        if annotator == POINTCLOUD:
            self._extra = rep.AnnotatorRegistry.get_annotator(SEMANTIC_SEGMENTATION, init_params={"colorize": False})
        elif uses_stable_ids(annotator, self.isaac_version):
            self._extra = rep.AnnotatorRegistry.get_annotator(STABLE_ID_MAP_V60)
        if self._extra is not None:
            self._extra.attach([self.render_product])
        if self._rtx and "prim_labels" not in self.adapter_kwargs:
            try:
                import omni.usd
            except ImportError:  # no stage here: classes come from object_labels only
                pass
            else:
                self.adapter_kwargs["prim_labels"] = stage_prim_labels(lambda: omni.usd.get_context().get_stage())

    def _prepare(self, seed: int, focus_classes: Sequence[str]) -> None:
        if self._rtx and not self._timeline.is_playing():
            self._timeline.play()  # RTX annotators stay empty on a paused timeline (IsaacSim issue 110)
        self._rep.set_global_seed(int(seed))
        if self.on_focus is not None:
            self.on_focus(list(focus_classes), int(seed))
        self._rep.utils.send_og_event(self.randomize_event)

    def _frame(self, *, seed: int, focus_classes: Sequence[str], frame_id: int, attempt: int) -> dict[str, Any]:
        payload = self.annotator.get_data()
        if payload is None:
            raise SimGapInputError(
                f"replicator scene source: annotator {self.annotator_name!r} on {self.render_product} returned no "
                "data (timeline not playing? see IsaacSim issue 110)"
            )
        meta = {
            "frame_id": frame_id,
            "seed": seed,
            "sensor": self.sensor_name,
            "focus_classes": list(focus_classes),
            "attempt": attempt,
            "render_product": self.render_product,
        }
        kwargs = dict(self.adapter_kwargs)
        extra = self._extra.get_data() if self._extra is not None else None
        if self.annotator_name == POINTCLOUD and isinstance(extra, Mapping):
            info = extra.get("info") if isinstance(extra.get("info"), Mapping) else extra
            if info.get("idToLabels"):
                kwargs["id_to_labels"] = info["idToLabels"]
        elif extra is not None:
            raw = extra.get("data", extra) if isinstance(extra, Mapping) else extra
            kwargs["stable_id_map"] = {**kwargs.get("stable_id_map", {}), **parse_stable_id_map(raw)}
        if self.annotator_name == GENERIC_MODEL_OUTPUT_V60:
            payload = payload.get("data", payload) if isinstance(payload, Mapping) else payload
            if not isinstance(payload, Mapping) and not hasattr(payload, "numElements"):
                from isaacsim.sensors.experimental.rtx import parse_generic_model_output_data

                payload = parse_generic_model_output_data(payload)
        return adapt(self.annotator_name, payload, metadata=meta, **kwargs)

    async def render_async(
        self, *, seed: int, focus_classes: Sequence[str] = (), frame_id: int = 0, attempt: int = 0
    ) -> dict[str, Any]:
        """Render one frame on Kit's loop (``await orchestrator.step_async``)."""
        self._loop_thread = threading.get_ident()
        self._prepare(seed, focus_classes)
        await self._rep.orchestrator.step_async(rt_subframes=self.rt_subframes, pause_timeline=not self._rtx)
        return self._frame(seed=seed, focus_classes=focus_classes, frame_id=frame_id, attempt=attempt)

    def render(
        self, *, seed: int, focus_classes: Sequence[str] = (), frame_id: int = 0, attempt: int = 0
    ) -> dict[str, Any]:
        """Render one frame (from a worker thread via Kit's loop, or synchronously without a loop).

        Raises:
            SimGapInputError: no data from the annotator, or called on the loop's own thread (it would deadlock:
                use :meth:`render_async` there).
            TimeoutError: the loop did not finish the render within ``timeout_s``.
        """
        kw = {"seed": int(seed), "focus_classes": list(focus_classes), "frame_id": int(frame_id), "attempt": attempt}
        if self._loop is None:
            self._prepare(seed, focus_classes)
            self._rep.orchestrator.step(rt_subframes=self.rt_subframes, pause_timeline=not self._rtx)
            return self._frame(**kw)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise SimGapInputError("ReplicatorSceneSource.render called on Kit's loop thread: use render_async")
        future = asyncio.run_coroutine_threadsafe(self.render_async(**kw), self._loop)
        return future.result(timeout=self.timeout_s)

    def close(self) -> None:
        """Detach the annotators from the render product."""
        self.annotator.detach()
        if self._extra is not None:
            self._extra.detach()
