"""Stand-in for ``omni.replicator.core`` (Replicator 1.12.x API subset), for tests only.

Faithful where SimGap touches it: ``Writer`` (abstract ``write``; ``initialize`` re-runs ``__init__``; ``attach``,
``detach``, ``on_final_frame``, class attributes ``backend``, ``version``, ``annotators``, ``metadata``,
``num_written``, ``data_structure``), ``WriterRegistry`` (keyed on the class ``__name__``; ``register``,
``unregister``, ``get``, ``get_writers``), ``AnnotatorRegistry.get_annotator(name, init_params=...)`` and
``utils.send_og_event``, ``set_global_seed``, ``orchestrator.step`` / ``step_async`` and ``Annotator.get_data``.
Stand-in-only: ``_deliver(writer, data)`` plays the framework's part for a writer (calls ``write`` and counts);
``utils._LISTENERS`` lets a test play a randomizer graph (called on ``send_og_event``); ``orchestrator._STEP_HOOKS``
are called on every step (a test "renders" there and fills annotators with ``Annotator._set_data``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from . import orchestrator, utils  # noqa: F401  (rep.orchestrator.step*, rep.utils.send_og_event)

__version__ = "1.12.27-stub"

# Annotators the stand-in knows; the real registry raises for unknown names too.
_KNOWN_ANNOTATORS = {
    "pointcloud",
    "semantic_segmentation",
    "RtxSensorCpuIsaacCreateRTXLidarScanBuffer",
    "IsaacExtractRTXSensorPointCloudNoAccumulator",
    "GenericModelOutput",
    "StableIdMap",
}


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
        """The annotator's output for the last step (None before any)."""
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


class Writer(ABC):
    """Base writer: subclasses fill ``self.annotators`` in ``__init__`` and implement ``write``."""

    backend = None
    version = "0.0.0"
    annotators: list = []
    metadata = None
    num_written = 0
    data_structure = "legacy"

    @abstractmethod
    def write(self, data: dict) -> None:
        raise NotImplementedError

    def initialize(self, **kwargs: Any) -> None:
        self.__init__(**kwargs)

    def attach(self, render_products: Any, trigger: Any = "omni.replicator.core.OgnOnFrame") -> None:
        rps = render_products if isinstance(render_products, list | tuple) else [render_products]
        self._render_products = [str(rp) for rp in rps]
        self._trigger = trigger
        for annotator in self.annotators:
            if isinstance(annotator, Annotator):
                annotator.attach(self._render_products)
        _ATTACHED.append(self)

    async def attach_async(self, render_products: Any, trigger: Any = "omni.replicator.core.OgnOnFrame") -> None:
        self.attach(render_products, trigger)

    def detach(self) -> None:
        for annotator in self.annotators:
            if isinstance(annotator, Annotator):
                annotator.detach()
        if self in _ATTACHED:
            _ATTACHED.remove(self)
        self._render_products = []

    def on_final_frame(self) -> None:  # noqa: B027 - a no-op hook in Replicator too
        pass

    def get_metadata(self) -> dict:
        return dict(self.metadata or {})

    def write_metadata(self) -> None:  # noqa: B027 - a no-op hook in Replicator too
        pass


_ATTACHED: list[Writer] = []
_GLOBAL_SEED: list[int] = []


def set_global_seed(seed: int) -> None:
    _GLOBAL_SEED.append(int(seed))


class WriterRegistry:
    _writers: dict[str, type] = {}
    _categories: dict[str, str | None] = {}

    @classmethod
    def register(cls, writer: type, category: str | None = None) -> None:
        cls._writers[writer.__name__] = writer
        cls._categories[writer.__name__] = category

    @classmethod
    def unregister(cls, writer_name: str) -> None:
        if writer_name not in cls._writers:
            raise KeyError(f"Writer {writer_name} is not registered")
        del cls._writers[writer_name]
        cls._categories.pop(writer_name, None)

    @classmethod
    def get(cls, writer_name: str, init_params: dict | None = None, render_products: Any = None) -> Writer:
        try:
            writer_cls = cls._writers[writer_name]
        except KeyError:
            raise ValueError(f"Writer {writer_name} is not registered") from None
        # As in Replicator: an uninitialized instance; ``initialize(**params)`` runs ``__init__``.
        writer = writer_cls.__new__(writer_cls)
        if init_params is not None:
            writer.initialize(**init_params)
        if render_products is not None:
            writer.attach(render_products)
        return writer

    @classmethod
    def get_writers(cls, category: str | None = None) -> dict[str, type]:
        return {n: w for n, w in cls._writers.items() if category is None or cls._categories.get(n) == category}


def _base_data(frame_number: int = 0) -> dict:
    """The keys Replicator always puts into ``data``."""
    return {
        "reference_time": (frame_number, 60),
        "trigger_outputs": {"on_time": 0},
        "distribution_outputs": {},
        "named_outputs": {},
        "swhFrameNumber": frame_number,
    }


def _deliver(writer: Writer, data: dict) -> None:
    """Stand-in only: what the framework does for each triggered frame (``write`` then count)."""
    writer.write({**_base_data(writer.num_written), **data})
    writer.num_written += 1
