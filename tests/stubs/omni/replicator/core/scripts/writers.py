"""Stand-in for ``omni.replicator.core.scripts.writers`` (Replicator 1.12.x), for tests only.

Follows the real module where SimGap touches it: ``WriterRegistryError`` / ``InvalidWriterError`` (raised by
``WriterRegistry.register`` for a non-``Writer``, by ``unregister`` and ``get`` for an unknown name),
``Writer.__new__`` seeding ``num_written`` / ``annotators`` / ``version`` per instance, ``initialize`` re-running
``__init__``, ``attach`` resetting ``num_written``, ``get_data`` returning the last payload (which "may be older
than the current simulation time").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["InvalidWriterError", "Writer", "WriterError", "WriterRegistry", "WriterRegistryError"]


class WriterRegistryError(Exception):
    def __init__(self, msg: str | None = None) -> None:
        super().__init__(msg or "A WriterRegistry error was encountered.")


class WriterError(Exception):
    def __init__(self, msg: str | None = None) -> None:
        super().__init__(msg or "A Writer error was encountered.")


class InvalidWriterError(WriterRegistryError):
    def __init__(self, writer_name: str, writer: Any, msg: str | None = None) -> None:
        super().__init__(msg or f"The writer `{writer_name}` is invalid.")
        self.writer_name = writer_name
        self.writer = writer


_ATTACHED: list[Writer] = []


class Writer(ABC):
    """Base writer: subclasses fill ``self.annotators`` in ``__init__`` and implement ``write``."""

    backend = None
    version = "0.0.0"
    annotators = None
    metadata = None
    num_written = None
    data_structure = "legacy"

    def __new__(cls, *args: Any, **kwargs: Any) -> Writer:
        instance = super().__new__(cls)
        instance.num_written = 0
        instance.annotators = []
        instance.version = "0.0.0"
        return instance

    @abstractmethod
    def write(self, data: dict) -> None:
        raise NotImplementedError

    def initialize(self, **kwargs: Any) -> None:
        self.__init__(**kwargs)

    def attach(self, render_products: Any, trigger: Any = "omni.replicator.core.OgnOnFrame") -> None:
        rps = render_products if isinstance(render_products, list | tuple) else [render_products]
        self._render_products = [str(getattr(rp, "path", rp)) for rp in rps]
        self._trigger = trigger
        for annotator in self.annotators:
            if hasattr(annotator, "attach"):
                annotator.attach(self._render_products)
        _ATTACHED.append(self)
        self.num_written = 0

    async def attach_async(self, render_products: Any, trigger: Any = "omni.replicator.core.OgnOnFrame") -> None:
        self.attach(render_products, trigger)

    def detach(self) -> None:
        for annotator in self.annotators:
            if hasattr(annotator, "detach"):
                annotator.detach()
        if self in _ATTACHED:
            _ATTACHED.remove(self)
        self._render_products = []

    def on_final_frame(self) -> None:  # noqa: B027 - telemetry only in Replicator
        pass

    def get_metadata(self) -> None:
        self.metadata = {"name": type(self).__name__, "version": self.version}

    def write_metadata(self) -> None:  # noqa: B027 - needs a backend in Replicator
        pass

    def get_data(self) -> dict | None:
        return getattr(self, "_last_data", None)


class WriterRegistry:
    _writers: dict[str, type] = {}
    _categories: dict[str, list[str]] = {}

    @classmethod
    def register(cls, writer: type, category: str | None = None) -> None:
        name = writer.__name__
        if not issubclass(writer, Writer):
            raise InvalidWriterError(name, writer, f"Writer must be of class `Writer`, got {type(writer)}")
        cls._writers[name] = writer
        if category:
            cls._categories.setdefault(category, []).append(name)

    @classmethod
    def unregister(cls, writer_name: str) -> None:
        if writer_name not in cls._writers:
            raise WriterRegistryError(f"No writer with name `{writer_name}` was found in registry.")
        for writer in [w for w in _ATTACHED if type(w).__name__ == writer_name]:
            writer.detach()
        del cls._writers[writer_name]
        for names in cls._categories.values():
            if writer_name in names:
                names.remove(writer_name)

    @classmethod
    def get(
        cls, writer_name: str, init_params: dict | None = None, render_products: Any = None, trigger: Any = None
    ) -> Writer:
        if writer_name not in cls._writers:
            raise WriterRegistryError(f"No writer with name `{writer_name}` was found in registry.")
        writer_cls = cls._writers[writer_name]
        writer = writer_cls.__new__(writer_cls)  # uninitialized, as in Replicator: initialize() runs __init__
        if init_params:
            writer.initialize(**init_params)
        if render_products:
            writer.attach(render_products)
        return writer

    @classmethod
    def get_writers(cls, category: str | None = None) -> dict[str, type]:
        if category:
            return {n: cls._writers[n] for n in cls._categories.get(category, [])}
        return dict(cls._writers)
