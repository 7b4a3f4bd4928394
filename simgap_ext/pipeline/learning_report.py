"""HTML page of an active-learning run (``simgap report OUT`` on a ``simgap active-learn`` directory).

Reads ``rounds.jsonl`` (one record per round, see :mod:`simgap_ext.active.loop`) and draws the learning curves:
held-out mIoU and per-class IoU against the labelled points, and the pool's normalised-entropy percentiles per
round. Plain JSON + matplotlib: no torch needed.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_bytes
from ..errors import SimGapInputError
from ..plots import PAGE_CSS, png_data_uri, use_agg

__all__ = ["ROUNDS_FILE", "read_rounds", "render_learning_html", "write_learning_report"]

ROUNDS_FILE = "rounds.jsonl"


def read_rounds(run_dir: str | Path) -> list[dict[str, Any]]:
    """The round records of an active-learning run directory.

    Raises:
        SimGapInputError: no ``rounds.jsonl`` or a line that is not JSON.
    """
    p = Path(run_dir) / ROUNDS_FILE
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SimGapInputError(f"{p}: cannot read the round log ({exc.strerror or exc})") from exc
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SimGapInputError(f"{p}:{n}: not JSON ({exc.msg})") from exc
    return out


def _plots(rounds: list[dict[str, Any]]) -> list[str]:
    use_agg()
    import matplotlib.pyplot as plt

    x = [r["labelled_points"] for r in rounds]
    figs = []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(x, [r["miou"] if r["miou"] is not None else float("nan") for r in rounds], "o-k", lw=2, label="mIoU")
    classes = sorted({c for r in rounds for c in (r.get("iou") or {})})
    for c in classes:
        ax.plot(x, [(r["iou"].get(c) if r["iou"].get(c) is not None else float("nan")) for r in rounds], ".-",
                alpha=0.6, label=c)  # fmt: skip
    ax.set_xlabel("labelled points (oracle)")
    ax.set_ylabel("held-out IoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("learning curve")
    fig.tight_layout()
    figs.append(png_data_uri(fig))
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    rr = [r["round"] for r in rounds]
    for q in ("p50", "p90", "p95", "p99"):
        ax.plot(rr, [r["entropy"].get(q, float("nan")) for r in rounds], "o-", label=q)
    ax.set_xlabel("round")
    ax.set_ylabel("pool entropy / log C")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("pool uncertainty")
    fig.tight_layout()
    figs.append(png_data_uri(fig))
    return figs


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_learning_html(rounds: list[dict[str, Any]], *, title: str, config: dict[str, Any] | None = None) -> str:
    """The page for a list of round records."""
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{r['round']}</td><td>{r['labelled_scans']}</td><td>{r['labelled_points']}</td>"
        f"<td>{_fmt(r['miou'])}</td>"
        f"<td>{r['entropy'].get('p95', float('nan')):.3f}</td></tr>"
        for r in rounds
    )
    imgs = "\n".join(f'<img src="{u}" alt="plot">' for u in (_plots(rounds) if rounds else []))
    cfg = e(json.dumps(config, indent=1)) if config else "(none)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>{PAGE_CSS}
img {{ display: block; margin: 1em 0; }}</style></head><body>
<h1>{e(title)}</h1>
<table id="rounds">
<tr><th>round</th><th>labelled scans</th><th>labelled points</th><th>held-out mIoU</th><th>p95 entropy</th></tr>
{rows}
</table>
{imgs}
<h2>Configuration</h2>
<pre>{cfg}</pre>
</body></html>
"""


def write_learning_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) for an active-learning run.

    Raises:
        SimGapInputError: no round log.
    """
    base = Path(run_dir)
    rounds = read_rounds(base)
    config = None
    if (base / "config.json").is_file():
        try:
            config = json.loads((base / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            config = None
    page = render_learning_html(rounds, title=f"SimGap active learning: {base.resolve().name}", config=config)
    target = Path(out) if out is not None else base / "report.html"
    atomic_write_bytes(target, page.encode("utf-8"))
    return target
