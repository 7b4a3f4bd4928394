"""``simgap score --html OUT``: one self-contained HTML page about a paired DoGSS-PCL result.

The page shows what the CLI prints, as pictures first, so that a perception engineer sees at a glance which
scenes and classes fail and why. Matplotlib PNGs are embedded as base64 ``data:`` URIs (no external scripts,
styles or fonts: it opens from disk or as an e-mail attachment), like ``simgap report``:

- scene G per pair (bars, red below the threshold) with the G threshold and the mean scene G;
- per class: mean G (the worst frame's G as a dot) and JS, each with its threshold;
- the one-directional nearest-neighbour distances of the scenes, pooled over pairs (log-x histogram of
  :class:`~.paired.DistanceHistogram`, ``d_max`` marked): synthetic -> real shows synthetic points with no real
  counterpart (phantom geometry, noise), real -> synthetic shows real geometry the simulation misses;
- the scene and class tables the CLI prints (every pair, not only the first 50), the warnings and the settings.

matplotlib is imported only when a page is rendered.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data.atomic import atomic_write_bytes
from ..plots import PAGE_CSS, png_data_uri, use_agg
from .paired import DistanceHistogram, PairedReport

__all__ = ["render_score_html", "write_score_html"]

_log = logging.getLogger(__name__)

_PASS, _FAIL, _NA = "#2e7d32", "#c62828", "#9e9e9e"
_DIRECTIONS = (
    ("synthetic_to_real", "synthetic \u2192 real", "#1565c0"),
    ("real_to_synthetic", "real \u2192 synthetic", "#ef6c00"),
)
#: pairs labelled on the scene chart's x axis; beyond that the axis shows the pair index
_MAX_SCENE_LABELS = 40


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _scene_plot(report: PairedReport) -> str:
    import matplotlib.pyplot as plt

    n = len(report.frames)
    fig, ax = plt.subplots(figsize=(min(16.0, max(7.0, 0.35 * n + 2)), 4))
    if n:
        g = [f.g for f in report.frames]
        colors = [_PASS if v >= report.threshold_g else _FAIL for v in g]
        x = list(range(n))
        ax.bar(x, g, color=colors, width=0.8)
        if n <= _MAX_SCENE_LABELS:
            labels = [f.synthetic if f.synthetic == f.real else f"{f.real}/{f.synthetic}" for f in report.frames]
            ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
        else:
            ax.set_xlabel("pair (in scan order)")
        ax.axhline(
            report.threshold_g, color=_FAIL, linestyle="--", linewidth=1, label=f"threshold {report.threshold_g}"
        )
        ax.axhline(
            report.scene_g_mean, color="#222", linestyle=":", linewidth=1, label=f"mean {report.scene_g_mean:.3f}"
        )
        ax.legend(loc="upper right", fontsize=8, ncol=2)
    else:
        ax.text(0.5, 0.5, "no pair was scored", ha="center", va="center", transform=ax.transAxes)
    _score_axis(ax)
    ax.set_ylabel("scene G")
    ax.set_title(f"Scene G per pair ({n} pairs, red: below {report.threshold_g})")
    return png_data_uri(fig)


def _score_axis(ax: Any) -> None:
    # scores live in [0, 1]; the band above 1 keeps the legend off the bars
    ax.set_ylim(0, 1.18)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def _bars(ax: Any, names: list[str], values: list[float | None], ok: list[bool | None]) -> None:
    x = list(range(len(names)))
    colors = [_NA if o is None else _PASS if o else _FAIL for o in ok]
    ax.bar(x, [0.0 if v is None else v for v in values], color=colors)
    for i, v in enumerate(values):
        if v is None:
            ax.text(i, 0.02, "n/a", ha="center", va="bottom", fontsize=8, color="#555")
    ax.set_xticks(x, names, rotation=30, ha="right")


def _class_plot(report: PairedReport) -> str:
    import matplotlib.pyplot as plt

    names = list(report.classes)
    width = min(16.0, max(9.0, 1.1 * len(names) + 3))
    fig, (ax_g, ax_js) = plt.subplots(1, 2, figsize=(width, 4))
    if names:
        cs = list(report.classes.values())
        g = [c.g_mean for c in cs]
        _bars(ax_g, names, g, [None if v is None else v >= report.threshold_g for v in g])
        mins = [(i, c.g_min) for i, c in enumerate(cs) if c.g_min is not None]
        if mins:
            ax_g.scatter([i for i, _ in mins], [v for _, v in mins], color="#222", s=14, zorder=3, label="worst frame")
        js = [c.js for c in cs]
        _bars(ax_js, names, js, [None if v is None else v <= report.threshold_js for v in js])
    else:
        for ax in (ax_g, ax_js):
            ax.text(0.5, 0.5, "no class was scored", ha="center", va="center", transform=ax.transAxes)
    ax_g.axhline(
        report.threshold_g, color=_FAIL, linestyle="--", linewidth=1, label=f"pass: G \u2265 {report.threshold_g}"
    )
    ax_js.axhline(
        report.threshold_js, color=_FAIL, linestyle="--", linewidth=1, label=f"pass: JS \u2264 {report.threshold_js}"
    )
    _score_axis(ax_g)
    _score_axis(ax_js)
    ax_g.set_ylabel("mean G over frames with the class")
    ax_js.set_ylabel("JS divergence (bits)")
    ax_g.set_title("Geometric score G per class")
    ax_js.set_title("Semantic JS per class")
    ax_g.legend(loc="upper right", fontsize=8, ncol=2)
    ax_js.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return png_data_uri(fig)


def _distance_plot(hist: DistanceHistogram | None, *, squared: bool) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    if hist is None or not (hist.total("synthetic_to_real") or hist.total("real_to_synthetic")):
        ax.text(0.5, 0.5, "no distances (no pair was scored)", ha="center", va="center", transform=ax.transAxes)
        ax.set_xscale("log")
    else:
        notes = []
        for direction, label, color in _DIRECTIONS:
            counts = getattr(hist, direction)
            n = int(counts.sum())
            if not n:
                continue
            pct = 100.0 * counts[1:-1] / n
            beyond = hist.fraction_beyond_d_max(direction) or 0.0
            mean = hist.mean(direction) or 0.0
            ax.stairs(
                pct,
                hist.edges,
                color=color,
                linewidth=1.5,
                label=f"{label}: {n:,} points, mean {mean:.3g} m, {100 * beyond:.1f}% \u2265 d_max",
            )
            if counts[0]:
                notes.append(f"{label}: {100.0 * counts[0] / n:.1f}% below {hist.edges[0]:.2g} m (exact matches incl.)")
            if counts[-1]:
                notes.append(f"{label}: {100.0 * counts[-1] / n:.1f}% at or beyond {hist.edges[-1]:.2g} m")
        ax.set_xscale("log")
        ax.set_xlim(hist.edges[0], hist.edges[-1])
        ax.axvline(hist.d_max, color=_FAIL, linestyle="--", linewidth=1, label=f"d_max = {hist.d_max:g} m")
        if notes:
            ax.text(
                0.99,
                0.97,
                "\n".join(notes),
                ha="right",
                va="top",
                fontsize=8,
                transform=ax.transAxes,
                bbox={"facecolor": "white", "edgecolor": "#bbb", "alpha": 0.9},
            )
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("distance to the nearest point of the other scan (m, log scale)")
    ax.set_ylabel("% of the direction's points per bin")
    conv = " (Chamfer squares them and compares with d_max\u00b2)" if squared else ""
    ax.set_title(f"Nearest-neighbour distances, all pairs pooled{conv}")
    return png_data_uri(fig)


def _verdict(passed: bool, reasons: list[str]) -> str:
    if passed and reasons:
        return '<td class="na">n/a</td>'
    return '<td class="pass">pass</td>' if passed else '<td class="fail">FAIL</td>'


def render_score_html(
    report: PairedReport, *, title: str = "SimGap paired score", sources: Mapping[str, Any] | None = None
) -> str:
    """The page for ``report`` (see the module docstring).

    Args:
        report: a :class:`~.paired.PairedReport` (``report.distances`` None draws an empty distance plot).
        title: page title and heading.
        sources: extra settings shown in the settings table (e.g. ``{"real": path, "synthetic": path}``).

    Returns:
        The HTML document as a string.
    """
    use_agg()
    e = html.escape
    plots = {
        "scene_g": (
            "Scene G = 1 - clamp(Chamfer / d_max, 0, 1) of each real/synthetic pair; red bars fail the threshold.",
            _scene_plot(report),
        ),
        "class_scores": (
            "Left: mean G of each class over the frames where both scans have it (dot: the worst frame). "
            "Right: JS divergence of the class's instance embeddings over all frames. Grey n/a: not measurable "
            "(class on one side only, or no instance crop large enough).",
            _class_plot(report),
        ),
        "nn_distances": (
            "Synthetic \u2192 real: distance from each synthetic point to the nearest real point (a tail beyond d_max: "
            "phantom points or noise the sensor does not produce). Real \u2192 synthetic: from each real point to the "
            "nearest synthetic point (a tail: real geometry the simulation misses). The scene Chamfer is half "
            "the sum of the two directions' means (of the squared distances with --squared).",
            _distance_plot(report.distances, squared=report.squared),
        ),
    }
    imgs = "\n".join(
        f'<figure><img alt="{e(k)}" id="{e(k)}" src="{uri}"><figcaption>{e(cap)}</figcaption></figure>'
        for k, (cap, uri) in plots.items()
    )
    class_rows = "\n".join(
        f"<tr><td>{e(c.name)}</td><td>{c.n_frames}</td><td>{_fmt(c.g_mean)}</td><td>{_fmt(c.g_min)}</td>"
        f"<td>{_fmt(c.js)}</td><td>{_fmt(c.combined)}</td><td>{c.n_real_instances}/{c.n_synthetic_instances}</td>"
        f"{_verdict(c.passed, c.reasons)}<td>{e('; '.join(c.reasons))}</td></tr>"
        for c in report.classes.values()
    )
    scene_rows = "\n".join(
        f"<tr><td>{e(f.real)}</td><td>{e(f.synthetic)}</td><td>{f.n_real}/{f.n_synthetic}</td><td>{f.chamfer:.4f}</td>"
        f'<td class="{"pass" if f.g >= report.threshold_g else "fail"}">{f.g:.3f}</td><td>{f.dcd:.3f}</td></tr>'
        for f in report.frames
    )
    warnings = (
        "<h2>Warnings</h2>\n<ul>\n" + "\n".join(f"<li>{e(w)}</li>" for w in report.warnings) + "\n</ul>"
        if report.warnings
        else ""
    )
    settings = {
        **dict(sources or {}),
        "pairing": report.pairing,
        "d_max (m)": f"{report.d_max:g}",
        "Chamfer": "squared (compared with d_max\u00b2)" if report.squared else "Euclidean (compared with d_max)",
        "threshold G": report.threshold_g,
        "threshold JS (bits)": report.threshold_js,
    }
    settings_rows = "\n".join(
        f"<tr><td>{e(str(k))}</td><td>{e('-' if v is None else str(v))}</td></tr>" for k, v in settings.items()
    )
    verdict = '<span class="pass">PASS</span>' if report.passed else '<span class="fail">FAIL</span>'
    failed = f" &middot; failing classes: {e(', '.join(report.failed_classes))}" if report.failed_classes else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
{PAGE_CSS}
th:first-child, td:first-child, #scenes td:nth-child(2), #per-class td:last-child, #per-class th:last-child,
#settings td {{ text-align: left; }}
figcaption {{ max-width: 60em; color: #444; font-size: 90%; }}
.pass {{ color: {_PASS}; font-weight: bold; }}
.fail {{ color: {_FAIL}; font-weight: bold; }}
.na {{ color: #666; }}
figure {{ display: block; margin: 1em 0; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{e(title)}</h1>
<p id="verdict">{len(report.frames)} pairs &middot; mean scene G {report.scene_g_mean:.3f}
(d_max {report.d_max:g} m, threshold {report.threshold_g}) &rarr; {verdict}{failed}</p>
{warnings}
<h2>Plots</h2>
{imgs}
<h2>Classes (G &ge; {report.threshold_g}, JS &le; {report.threshold_js} bits)</h2>
<table id="per-class">
<tr><th>class</th><th>frames</th><th>G mean</th><th>G min</th><th>JS</th><th>combined</th><th>inst r/s</th>
<th>result</th><th>reasons</th></tr>
{class_rows}
</table>
<h2>Scenes ({len(report.frames)} pairs, pairing by {e(report.pairing)})</h2>
<table id="scenes">
<tr><th>real</th><th>synthetic</th><th>points r/s</th><th>Chamfer</th><th>G</th><th>DCD</th></tr>
{scene_rows}
</table>
<h2>Settings</h2>
<table id="settings">
{settings_rows}
</table>
</body></html>
"""


def write_score_html(
    report: PairedReport,
    out: str | Path,
    *,
    title: str = "SimGap paired score",
    sources: Mapping[str, Any] | None = None,
) -> Path:
    """Render :func:`render_score_html` and write it atomically (a failed write leaves no partial page).

    Args:
        report, title, sources: as in :func:`render_score_html`.
        out: the HTML file.

    Returns:
        ``out`` as a Path.

    Raises:
        ExportError: the page could not be written (directory, full disk, permission denied...).
    """
    page = render_score_html(report, title=title, sources=sources)
    target = atomic_write_bytes(out, page.encode("utf-8"))
    _log.info("wrote %s", target)
    return target
