"""The SimGap panel: :mod:`.panel_model` (pure Python, display rows over AcceptanceStats) and :mod:`.window`
(the omni.ui view, imported only where omni.ui exists)."""

from __future__ import annotations

from .panel_model import COLUMNS, STATUS_COLORS, PanelModel, PanelRow, panel_rows, summary_line

__all__ = ["COLUMNS", "STATUS_COLORS", "PanelModel", "PanelRow", "panel_rows", "summary_line"]
