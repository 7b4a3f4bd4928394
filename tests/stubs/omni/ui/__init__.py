"""Stand-in for ``omni.ui`` (widget constructors and containers SimGap uses), for tests only.

As in omni.ui, a widget created inside a ``with container:`` block becomes that container's child; a ``Frame``
(and ``Window.frame``) rebuilds its content by calling the function given to ``set_build_fn``. Widgets are
recorded in ``children`` so that a test can read what was built; ``_walk(widget)`` and ``_texts(widget)`` are
stand-in-only helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

_STACK: list[Widget] = []


class Length:
    def __init__(self, value: float) -> None:
        self.value = value


class Pixel(Length):
    pass


class Percent(Length):
    pass


class Fraction(Length):
    pass


class Widget:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.children: list[Widget] = []
        self.visible = kwargs.get("visible", True)
        self.style = kwargs.get("style", {})
        self.tooltip = kwargs.get("tooltip", "")
        self.width = kwargs.get("width")
        self.height = kwargs.get("height")
        if _STACK:
            _STACK[-1].children.append(self)

    def destroy(self) -> None:
        self.children.clear()


class Container(Widget):
    def __enter__(self) -> Container:
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.pop()

    def clear(self) -> None:
        self.children.clear()


class Stack(Container):
    pass


class VStack(Stack):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spacing = kwargs.get("spacing", 0)


class HStack(Stack):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spacing = kwargs.get("spacing", 0)


class ZStack(Stack):
    pass


class Frame(Container):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._build_fn: Callable[[], None] | None = kwargs.get("build_fn")

    def set_build_fn(self, fn: Callable[[], None]) -> None:
        self._build_fn = fn
        self.rebuild()

    def rebuild(self) -> None:
        self.children.clear()
        if self._build_fn is not None:
            with self:
                self._build_fn()


class ScrollingFrame(Frame):
    pass


class CollapsableFrame(Frame):
    def __init__(self, title: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title


class Label(Widget):
    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text


class Button(Widget):
    def __init__(self, text: str = "", clicked_fn: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.clicked_fn = clicked_fn

    def call_clicked_fn(self) -> None:
        if self.clicked_fn is not None:
            self.clicked_fn()


class Spacer(Widget):
    pass


class Line(Widget):
    pass


class Rectangle(Widget):
    pass


class SimpleFloatModel:
    def __init__(self, value: float = 0.0) -> None:
        self._value = float(value)

    def get_value_as_float(self) -> float:
        return self._value

    def set_value(self, value: float) -> None:
        self._value = float(value)


class ProgressBar(Widget):
    def __init__(self, model: SimpleFloatModel | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model or SimpleFloatModel()


class Window:
    """A dockable window; ``frame`` is its root Frame."""

    def __init__(self, title: str, width: int = 400, height: int = 300, visible: bool = True, **kwargs: Any) -> None:
        self.title = title
        self.width = width
        self.height = height
        self.visible = visible
        self.frame = Frame()
        self._visibility_fn: Callable[[bool], None] | None = None
        self.destroyed = False

    def set_visibility_changed_fn(self, fn: Callable[[bool], None]) -> None:
        self._visibility_fn = fn

    def destroy(self) -> None:
        self.destroyed = True
        self.frame.children.clear()


def _walk(widget: Widget | Window) -> Iterator[Widget]:
    """Stand-in only: every widget under ``widget`` depth-first."""
    root = widget.frame if isinstance(widget, Window) else widget
    yield root
    for child in root.children:
        yield from _walk(child)


def _texts(widget: Widget | Window) -> list[str]:
    """Stand-in only: the texts of every Label/Button under ``widget`` in build order."""
    return [w.text for w in _walk(widget) if isinstance(w, Label | Button)]
