"""Window > SimGap: an omni.ui view over :class:`~simgap_ext.ui.panel_model.PanelModel` (no logic of its own).

Imported only where ``omni.ui`` exists (the extension checks first). Stats change on the batch's worker thread;
the window never touches widgets from there: it polls :meth:`PanelModel.take_dirty` on Kit's update event (on the
main thread) and rebuilds its frame when something changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import omni.ui as ui

from .panel_model import COLUMNS, PanelModel

__all__ = ["SimGapWindow", "WINDOW_TITLE"]

WINDOW_TITLE = "SimGap"
_COL_WIDTHS = (160, 70, 70, 70, 70, 70, 70, 70, 90)
_HEADER_STYLE = {"color": 0xFFCCCCCC}


class SimGapWindow:
    """The per-class acceptance panel.

    Args:
        model: the panel model to show.
        subscribe_updates: ``fn(callback) -> subscription`` registering a per-frame callback on Kit's update
            stream (the extension passes one built on ``omni.kit.app``); None: call :meth:`refresh` yourself.
        on_run_batch: optional callable behind a "Run batch" button.
        width, height: initial window size in pixels.
    """

    def __init__(
        self,
        model: PanelModel,
        *,
        subscribe_updates: Callable[[Callable[[Any], None]], Any] | None = None,
        on_run_batch: Callable[[], None] | None = None,
        width: int = 760,
        height: int = 320,
    ) -> None:
        self.model = model
        self._on_run_batch = on_run_batch
        self.window = ui.Window(WINDOW_TITLE, width=width, height=height)
        self.window.frame.set_build_fn(self._build)
        self._update_sub = subscribe_updates(self._on_update) if subscribe_updates is not None else None

    @property
    def visible(self) -> bool:
        """Whether the window is shown."""
        return bool(self.window.visible)

    @visible.setter
    def visible(self, value: bool) -> None:
        self.window.visible = bool(value)

    def _on_update(self, _event: Any) -> None:
        self.refresh()

    def refresh(self) -> bool:
        """Rebuild when the model changed; returns whether it did."""
        if not self.model.take_dirty():
            return False
        self.window.frame.rebuild()
        return True

    def _build(self) -> None:
        summary, rows = self.model.snapshot()
        with ui.VStack(spacing=4):
            with ui.HStack(height=22):
                ui.Label(self.model.status_text, name="status")
                if self._on_run_batch is not None:
                    ui.Button("Run batch", width=100, clicked_fn=self._on_run_batch)
            ui.Label(summary, height=20, name="summary")
            with ui.HStack(height=20):
                for title, width in zip(COLUMNS, _COL_WIDTHS, strict=True):
                    ui.Label(title, width=width, style=_HEADER_STYLE)
            with ui.ScrollingFrame():
                with ui.VStack(spacing=2):
                    for row in rows:
                        with ui.HStack(height=20, tooltip=row.tooltip):
                            for i, (text, width) in enumerate(zip(row.cells, _COL_WIDTHS, strict=True)):
                                style = {"color": row.color} if i in (0, len(row.cells) - 1) else {}
                                ui.Label(text, width=width, style=style)
                    if not rows:
                        ui.Label("Per-class numbers appear here as frames are gated.")

    def destroy(self) -> None:
        """Release the update subscription and the window."""
        self._update_sub = None  # Kit subscriptions unsubscribe when released
        self.window.destroy()
