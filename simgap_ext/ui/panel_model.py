"""What Window > SimGap shows, computed without omni.ui (so that it is tested outside Kit).

The panel is a view over :class:`~simgap_ext.pipeline.stats.AcceptanceStats`, the one per-class model. This module
turns its :class:`~simgap_ext.pipeline.stats.ClassRow` snapshots into display rows (texts, a status and a colour per
class) and keeps a thread-safe "changed" flag: ``AcceptanceStats`` calls subscribers from the recording thread
(a batch runs in a worker thread), so the window only polls :meth:`PanelModel.take_dirty` on Kit's UI update and
rebuilds itself on the main thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["COLUMNS", "STATUS_COLORS", "PanelRow", "panel_rows", "summary_line", "PanelModel"]

COLUMNS = ("Class", "Accepted", "Rejected", "Re-rand.", "Held back", "Rate", "Mean G", "JS", "Status")

# omni.ui colours are 0xAABBGGRR integers.
STATUS_COLORS: dict[str, int] = {
    "ok": 0xFF64D94C,  # green  #4CD964
    "low G": 0xFF00CCFF,  # amber  #FFCC00
    "JS high": 0xFF00CCFF,
    "quarantined": 0xFF303BFF,  # red    #FF3B30
    "not scored": 0xFFAAAAAA,  # grey
}

_DASH = "\u2013"


@dataclass(frozen=True)
class PanelRow:
    """One class line of the panel.

    Attributes:
        class_name: the class (``" (tail)"`` is appended to ``label`` for tail classes).
        label: text of the class column.
        cells: texts of :data:`COLUMNS` in order.
        rate: acceptance rate in [0, 1] (for a bar).
        status: ``"ok"``, ``"low G"``, ``"JS high"``, ``"quarantined"`` or ``"not scored"``.
        color: omni.ui colour of the status (:data:`STATUS_COLORS`).
        tooltip: why the status is what it is.
    """

    class_name: str
    label: str
    cells: tuple[str, ...]
    rate: float
    status: str
    color: int
    tooltip: str


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return _DASH if value is None else fmt.format(value)


def _status(row: Any, g_threshold: float, js_threshold: float) -> tuple[str, str]:
    if row.quarantined:
        return "quarantined", f"JS {_num(row.js)} > {js_threshold:g}: samples held back, scenes re-rendered"
    if row.mean_g is None:
        return "not scored", "no instance of this class was scored yet (background class or too few points)"
    if row.mean_g < g_threshold:
        return "low G", f"mean G {row.mean_g:.3f} < threshold {g_threshold:g}"
    if row.js is not None and row.js > js_threshold:
        return "JS high", f"JS {row.js:.3f} > {js_threshold:g}: quarantine pending (window not full)"
    return "ok", f"mean G {row.mean_g:.3f} >= {g_threshold:g}" + ("" if row.js is None else f", JS {row.js:.3f}")


def panel_rows(
    rows: Iterable[Any],
    *,
    g_threshold: float = 0.75,
    js_threshold: float = 0.15,
    tail_classes: Sequence[str] = (),
) -> list[PanelRow]:
    """Display rows for ``AcceptanceStats.rows()``.

    Args:
        rows: :class:`~simgap_ext.pipeline.stats.ClassRow` objects (any object with the same attributes).
        g_threshold: the gate's geometric threshold (colours low-G classes).
        js_threshold: the gate's semantic threshold.
        tail_classes: classes to mark as tail classes; they are listed first, in the given order.

    Returns:
        One :class:`PanelRow` per class: tail classes first, then the others by name.
    """
    tails = list(tail_classes)

    def order(r: Any) -> tuple[int, str]:
        return (tails.index(r.class_name) if r.class_name in tails else len(tails), r.class_name)

    ordered = sorted(rows, key=order)
    out: list[PanelRow] = []
    for r in ordered:
        status, why = _status(r, g_threshold, js_threshold)
        label = r.class_name + (" (tail)" if r.class_name in tails else "")
        cells = (
            label,
            str(r.accepted),
            str(r.rejected),
            str(r.rerandomized),
            str(r.held_back),
            f"{100.0 * r.acceptance_rate:.1f} %",
            _num(r.mean_g),
            _num(r.js),
            status,
        )
        out.append(PanelRow(r.class_name, label, cells, float(r.acceptance_rate), status, STATUS_COLORS[status], why))
    return out


def summary_line(frame_counts: Mapping[str, int]) -> str:
    """One line over all attempts, e.g. ``"12 attempts: 8 accepted, 2 rejected, 1 re-randomized, 1 held back"``."""
    n = int(frame_counts.get("attempts", 0))
    if n == 0:
        return "No frames gated yet."
    parts = [
        f"{int(frame_counts.get('accepted', 0))} accepted",
        f"{int(frame_counts.get('rejected', 0))} rejected",
        f"{int(frame_counts.get('rerandomized', 0))} re-randomized",
        f"{int(frame_counts.get('held_back', 0))} held back",
    ]
    return f"{n} attempt{'s' if n != 1 else ''}: " + ", ".join(parts)


class PanelModel:
    """The panel's view of an :class:`~simgap_ext.pipeline.stats.AcceptanceStats` (subscribe, snapshot, dirty flag).

    Args:
        stats: the model to observe (``subscribe``, ``rows``, ``frame_counts``); may be swapped with :meth:`attach`.
        g_threshold, js_threshold, tail_classes: see :func:`panel_rows`.
    """

    def __init__(
        self,
        stats: Any = None,
        *,
        g_threshold: float = 0.75,
        js_threshold: float = 0.15,
        tail_classes: Sequence[str] = (),
    ) -> None:
        self.g_threshold = float(g_threshold)
        self.js_threshold = float(js_threshold)
        self.tail_classes = list(tail_classes)
        self.status_text = "Idle."
        self._lock = threading.Lock()
        self._dirty = True
        self._stats: Any = None
        self._unsubscribe: Any = None
        if stats is not None:
            self.attach(stats)

    @property
    def stats(self) -> Any:
        """The observed stats model, or None."""
        return self._stats

    def attach(self, stats: Any, *, tail_classes: Sequence[str] | None = None) -> None:
        """Observe another stats model (a new batch); the previous subscription is released."""
        self.detach()
        self._stats = stats
        if tail_classes is not None:
            self.tail_classes = list(tail_classes)
        self._unsubscribe = stats.subscribe(self._on_change)
        self.mark_dirty()

    def follow_writer(self, writer: Any) -> None:
        """Show a ``SimGapWriter``'s numbers: its stats, its sink's tail classes and its gate's thresholds.

        Args:
            writer: anything with ``stats`` and ``sink`` (``tail_classes``; ``gate.config`` when it has one).
        """
        config = getattr(getattr(writer.sink, "gate", None), "config", None)
        if config is not None:
            self.g_threshold = float(config.g_threshold)
            self.js_threshold = float(config.js_threshold)
        self.attach(writer.stats, tail_classes=list(writer.sink.tail_classes))
        self.set_status(f"Following SimGapWriter -> {writer.sink.out_dir}")

    def detach(self) -> None:
        """Stop observing (idempotent)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None
        self._stats = None
        self.mark_dirty()

    def set_status(self, text: str) -> None:
        """Set the free-text status line (``"Batch running: 3 / 10 frames"``...)."""
        self.status_text = str(text)
        self.mark_dirty()

    def _on_change(self, _stats: Any) -> None:
        self.mark_dirty()

    def mark_dirty(self) -> None:
        """Flag that the view must be rebuilt (callable from any thread)."""
        with self._lock:
            self._dirty = True

    def take_dirty(self) -> bool:
        """True once after each change (then False until the next one)."""
        with self._lock:
            dirty, self._dirty = self._dirty, False
        return dirty

    def snapshot(self) -> tuple[str, list[PanelRow]]:
        """(summary line, display rows) of the current numbers."""
        if self._stats is None:
            return "No stats attached.", []
        rows = panel_rows(
            self._stats.rows(),
            g_threshold=self.g_threshold,
            js_threshold=self.js_threshold,
            tail_classes=self.tail_classes,
        )
        return summary_line(self._stats.frame_counts), rows
