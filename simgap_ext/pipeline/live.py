"""Live progress view of a generation run: a progress bar and the per-class table, on stderr.

A view over :class:`~simgap_ext.pipeline.stats.AcceptanceStats` (it subscribes and redraws; it holds no numbers
of its own). On a terminal it is a ``rich.live.Live`` display; otherwise (CI logs, pipes) it prints one plain
line per scheduled frame so that logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from .stats import AcceptanceStats

__all__ = ["LiveTable", "render_class_table", "format_plain_line"]


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def render_class_table(stats: AcceptanceStats, *, title: str | None = "per-class acceptance") -> Any:
    """A ``rich.table.Table`` of the stats' per-class rows (accepted, rejected, re-randomized, held back,
    acceptance rate, mean G, JS, quarantine flag)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", expand=False)
    for col, justify in (
        ("class", "left"),
        ("accepted", "right"),
        ("rejected", "right"),
        ("re-rand.", "right"),
        ("held back", "right"),
        ("accept %", "right"),
        ("mean G", "right"),
        ("JS", "right"),
        ("quarantine", "center"),
    ):
        table.add_column(col, justify=justify)
    for r in stats.rows():
        table.add_row(
            r.class_name,
            str(r.accepted),
            str(r.rejected),
            str(r.rerandomized),
            str(r.held_back),
            f"{100.0 * r.acceptance_rate:.1f}",
            _fmt(r.mean_g),
            _fmt(r.js),
            "[red]yes[/red]" if r.quarantined else "",
        )
    return table


def format_plain_line(stats: AcceptanceStats, done: int, total: int) -> str:
    """One log line: frames done and the frame-level decision counts."""
    f = stats.frame_counts
    return (
        f"[{done}/{total}] attempts={f['attempts']} accepted={f['accepted']} rejected={f['rejected']} "
        f"rerandomized={f['rerandomized']} held_back={f['held_back']}"
    )


class LiveTable:
    """Context manager showing generation progress.

    Args:
        stats: the model to display.
        total: frames scheduled in this run.
        completed: frames already done (resumed runs).
        stream: where to draw (default ``sys.stderr``).
        force_plain: print plain lines even on a terminal.
    """

    def __init__(
        self,
        stats: AcceptanceStats,
        total: int,
        *,
        completed: int = 0,
        stream: IO[str] | None = None,
        force_plain: bool = False,
    ) -> None:
        self.stats = stats
        self.total = int(total)
        self.completed = int(completed)
        self.stream = stream or sys.stderr
        self.plain = force_plain or not getattr(self.stream, "isatty", lambda: False)()
        self._live = None
        self._progress = None
        self._task = None
        self._unsubscribe = None
        self._last_draw = 0.0

    def __enter__(self) -> LiveTable:
        if not self.plain:
            from rich.console import Console, Group
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(file=self.stream)
            self._progress = Progress(
                TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
            )
            self._task = self._progress.add_task("frames", total=self.total, completed=self.completed)
            self._group = Group
            self._live = Live(self._renderable(), console=console, refresh_per_second=4, transient=False)
            self._live.__enter__()
            self._unsubscribe = self.stats.subscribe(lambda _s: self._redraw())
        return self

    def _renderable(self) -> Any:
        return self._group(self._progress, render_class_table(self.stats))

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._live is not None and (force or now - self._last_draw > 0.2):
            self._last_draw = now
            self._live.update(self._renderable())

    def advance(self, frames: int = 1) -> None:
        """Mark ``frames`` scheduled frames as finished."""
        self.completed += frames
        if self.plain:
            self.stream.write(format_plain_line(self.stats, self.completed, self.total) + "\n")
            self.stream.flush()
        else:
            self._progress.update(self._task, completed=self.completed)
            self._redraw(force=True)

    def __exit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._live is not None:
            self._redraw(force=True)
            self._live.__exit__(*exc)
            self._live = None
