"""The one progress bar the commands show on stderr while they work through scans or pairs."""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(label: str, *, disable: bool = False) -> Any:
    """A transient ``rich`` progress bar on stderr: ``label``, bar, ``done/total``, elapsed time.

    Args:
        label: what is being done (``"scoring"``).
        disable: no bar (``--no-progress``, logs, tests).

    Returns:
        A :class:`rich.progress.Progress` to use as a context manager.
    """
    # rich is imported here, not at module level: building the CLI parser must stay cheap (tests/test_cli_startup.py).
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=disable,
    )
