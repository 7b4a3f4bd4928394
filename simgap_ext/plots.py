"""Matplotlib figures as self-contained ``data:`` URIs, shared by the HTML pages (``simgap report``, ``score --html``).

matplotlib is imported only inside the functions, so that importing this module costs nothing where no page is
written, and the non-interactive Agg backend is selected unless the caller already chose one.
"""

from __future__ import annotations

import base64
import io
from typing import Any

__all__ = ["use_agg", "png_data_uri", "PAGE_CSS"]

#: Style rules every SimGap HTML page starts with (pages append their own rules after these).
PAGE_CSS = """body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }"""


def use_agg() -> None:
    """Select matplotlib's file-only Agg backend unless a backend was already chosen (no display is needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)


def png_data_uri(fig: Any, *, dpi: int = 100) -> str:
    """Render ``fig`` as a PNG ``data:`` URI and close it (a page embeds many figures; open ones leak memory).

    Args:
        fig: a ``matplotlib.figure.Figure``.
        dpi: resolution of the PNG.

    Returns:
        ``"data:image/png;base64,..."``, ready for an ``<img src>``.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
