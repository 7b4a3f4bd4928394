"""``ReplicatorSceneSource``: the ``"replicator"`` scene source (pull frames from a Replicator graph).

:class:`~simgap_ext.pipeline.GenerationRunner` pulls frames with ``render(seed=..., focus_classes=..., ...)``. Here
one render = set Replicator's global seed, publish the focus classes, fire the randomizer's custom event, step the
orchestrator once, read the annotator attached to the LiDAR / depth render product and adapt its payload
(:mod:`simgap_ext.replicator.adapters`). The user's randomizer graph listens with
``rep.trigger.on_custom_event(event_name=randomize_event)``.

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
from .adapters import ADAPTERS, POINTCLOUD, adapt, seed_class_ids

__all__ = ["ReplicatorSceneSource", "DEFAULT_RANDOMIZE_EVENT"]

DEFAULT_RANDOMIZE_EVENT = "simgap_randomize"


class ReplicatorSceneSource:
    """A :class:`~simgap_ext.backends.SceneSource` over a Replicator render product.

    Args:
        sensor: sensor profile name (recorded in frames; the profile must exist).
        render_product: path of the LiDAR / depth camera render product the annotator attaches to.
        preset: accepted for interface parity with the warp source (the Isaac Sim sensor config decides effects).
        device: unused (Replicator decides); accepted for interface parity.
        annotator: annotator name (a key of :data:`~simgap_ext.replicator.adapters.ADAPTERS`).
        randomize_event: custom event the randomizer graph triggers on.
        class_names: classes the scene can contain (what the runner may use as focus).
        loop: Kit's asyncio loop, for renders requested from a worker thread.
        rt_subframes: ``rt_subframes`` of ``orchestrator.step`` (more = fewer accumulation artefacts).
        timeout_s: longest wait for one render from a worker thread.
        on_focus: ``fn(focus_classes, seed)`` called before the event (the extension writes them to carb settings
            ``/exts/simgap_ext/runtime/*`` for the randomizer graph to read).
        adapter_kwargs: passed to the adapter (``id_to_labels``, ``object_labels``, ``stable_id_map``,
            ``prim_labels``).
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
    ) -> None:
        import omni.replicator.core as rep

        from ..sensors import load_sensor_profile

        if not render_product:
            raise SimGapInputError(
                "replicator scene source: no render product (set /exts/simgap_ext/render_product to the LiDAR's "
                "render product path)"
            )
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
        params = {"includeUnlabelled": True} if annotator == POINTCLOUD else None
        self.annotator = rep.AnnotatorRegistry.get_annotator(annotator, init_params=params)
        self.annotator.attach([self.render_product])

    def _prepare(self, seed: int, focus_classes: Sequence[str]) -> None:
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
        return adapt(self.annotator_name, payload, metadata=meta, **self.adapter_kwargs)

    async def render_async(
        self, *, seed: int, focus_classes: Sequence[str] = (), frame_id: int = 0, attempt: int = 0
    ) -> dict[str, Any]:
        """Render one frame on Kit's loop (``await orchestrator.step_async``)."""
        self._loop_thread = threading.get_ident()
        self._prepare(seed, focus_classes)
        await self._rep.orchestrator.step_async(rt_subframes=self.rt_subframes, pause_timeline=True)
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
            self._rep.orchestrator.step(rt_subframes=self.rt_subframes, pause_timeline=True)
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
        """Detach the annotator from the render product."""
        self.annotator.detach()
