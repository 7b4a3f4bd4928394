"""Stand-in for ``omni.replicator.core`` (Replicator 1.12.x API subset), for tests only.

Faithful where SimGap touches it: ``Writer`` / ``WriterRegistry`` / ``WriterRegistryError`` live in
``scripts/writers.py`` as in Replicator and are re-exported here; ``AnnotatorRegistry.get_annotator(name,
init_params=...)``, ``Annotator.get_data``, ``utils.send_og_event``, ``set_global_seed``, ``orchestrator.step`` /
``step_async``. Like the real pipeline, RTX annotators deliver empty buffers unless the timeline (``omni.timeline``
stand-in) plays during the step, and a writer receives each frame one tick late: ``data["reference_time"]`` is the
rendered frame's rational time while the timeline has already moved on.
Stand-in-only: ``_deliver(writer, data)`` plays the framework's part for a writer (one tick, ``write``, count);
``utils._LISTENERS`` lets a test play a randomizer graph (called on ``send_og_event``); ``orchestrator._STEP_HOOKS``
are called on every step (a test "renders" there and fills annotators with ``Annotator._set_data``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import omni.timeline

from . import orchestrator, utils  # noqa: F401  (rep.orchestrator.step*, rep.utils.send_og_event)
from .scripts.writers import _ATTACHED, Writer, WriterRegistry  # noqa: F401  (re-exported as in Replicator)

__version__ = "1.12.27-stub"

# Annotators the stand-in knows; the real registry raises for unknown names too.
_KNOWN_ANNOTATORS = {
    "pointcloud",
    "semantic_segmentation",
    "RtxSensorCpuIsaacCreateRTXLidarScanBuffer",
    "IsaacCreateRTXLidarScanBuffer",
    "IsaacExtractRTXSensorPointCloudNoAccumulator",
    "IsaacExtractRTXSensorPointCloud",
    "GenericModelOutput",
    "StableIdMap",
}
# RTX sensors tick with the timeline: without a playing timeline their annotators deliver empty buffers (IsaacSim
# issue 110; "RTX Sensor Annotators rely on the simulation timeline", Isaac Sim RTX annotator docs).
RTX_ANNOTATORS = _KNOWN_ANNOTATORS - {"pointcloud", "semantic_segmentation"}


def _empty_rtx(name: str) -> dict:
    return {"data": np.zeros((0, 3), np.float32), "info": {}} if name != "GenericModelOutput" else {"data": b""}


class Annotator:
    """An annotator handle as ``AnnotatorRegistry.get_annotator`` returns it."""

    def __init__(self, name: str, init_params: dict | None = None, device: str | None = None) -> None:
        self.name = name
        self.init_params = dict(init_params or {})
        self.device = device or "cpu"
        self.render_products: list[str] = []

    def get_name(self) -> str:
        return self.name

    def get_data(self, device: str | None = None) -> Any:
        """The annotator's output for the last step (None before any; empty for RTX without a playing timeline)."""
        if self.name in RTX_ANNOTATORS and not orchestrator.LAST_STEP_PLAYING[-1:] == [True]:
            return _empty_rtx(self.name) if hasattr(self, "_data") else None
        return getattr(self, "_data", None)

    def _set_data(self, data: Any) -> None:
        self._data = data

    def attach(self, render_products: Any) -> None:
        rps = render_products if isinstance(render_products, list | tuple) else [render_products]
        self.render_products.extend(str(rp) for rp in rps)

    def detach(self, render_products: Any = None) -> None:
        self.render_products.clear()


class AnnotatorRegistry:
    @staticmethod
    def get_annotator(
        name: str, init_params: dict | None = None, render_product_idxs: list | None = None, device: str | None = None
    ) -> Annotator:
        if name not in _KNOWN_ANNOTATORS:
            raise ValueError(f"Annotator {name} is not registered")
        return Annotator(name, init_params, device)

    @staticmethod
    def get_registered_annotators() -> list[str]:
        return sorted(_KNOWN_ANNOTATORS)


_GLOBAL_SEED: list[int] = []


def set_global_seed(seed: int) -> None:
    _GLOBAL_SEED.append(int(seed))


def _base_data(reference_frame: int) -> dict:
    """The keys Replicator always puts into ``data``; ``reference_time`` is a rational (numerator, denominator)."""
    return {
        "reference_time": (reference_frame, 60),
        "trigger_outputs": {"on_time": 0},
        "distribution_outputs": {},
        "named_outputs": {},
        "swhFrameNumber": reference_frame,
    }


def _deliver(writer: Writer, data: dict) -> None:
    """Stand-in only: what the framework does for one triggered frame.

    As in Replicator, the payload handed to ``write`` is that of the frame rendered one tick earlier (``get_data``:
    "this payload corresponds to the frame at data["reference_time"] which may be older than the current simulation
    time"): the simulation clock advances by one frame, ``reference_time`` stays at the frame that was rendered.
    RTX payloads are empty unless the timeline plays.
    """
    timeline = omni.timeline.get_timeline_interface()
    rendered = round(timeline.get_current_time() * 60)
    timeline._advance()
    if not timeline.is_playing():
        data = _blank_rtx(data)
    payload = {**_base_data(rendered), **data}
    writer._last_data = payload
    writer.write(payload)
    writer.num_written += 1


def _blank_rtx(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if key in RTX_ANNOTATORS or any(key.startswith(f"{n}-") for n in RTX_ANNOTATORS):
            out[key] = _empty_rtx(key.split("-")[0])
        elif key == "annotators" and isinstance(value, dict):
            out[key] = {n: ({rp: _empty_rtx(n) for rp in v} if n in RTX_ANNOTATORS else v) for n, v in value.items()}
        elif key == "renderProducts" and isinstance(value, dict):
            out[key] = {
                rp: {n: (_empty_rtx(n) if n in RTX_ANNOTATORS else p) for n, p in per.items()}
                for rp, per in value.items()
            }
        else:
            out[key] = value
    return out
