"""``simgap report DIR``: one self-contained HTML page about a generation run.

The page reads the run's manifest through :meth:`AcceptanceStats.from_manifest` (the same numbers the live table
showed) and embeds matplotlib PNGs as base64 ``data:`` URIs, with no external scripts, styles or fonts, so it
opens from disk or as an e-mail attachment:

- acceptance per class (stacked bars: accepted / rejected / re-randomized / held back);
- G distribution of the scene and per class (box plots over every scored attempt, gate thresholds drawn);
- JS per class over the run (attempt order) with quarantined attempts marked;
- the per-class summary table, the most frequent rejection reasons and the run configuration;
- the gap to the real reference without and with the fitted sensor-effect model (:mod:`.effect_gap`), when the
  run used a tuned preset or a tuned profile is given;
- bird's-eye views of a few rejected attempts beside their nearest real frame (:mod:`.bev`).
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import atomic_write_bytes
from ..data.manifest import read_manifest
from ..errors import SimGapInputError
from ..plots import PAGE_CSS, png_data_uri, use_agg
from .bev import BevView, bev_views
from .effect_gap import GAP_STATS, EffectGap, effect_gap
from .run_dir import MANIFEST_NAME, RUN_CONFIG_NAME, check_schedule
from .stats import AcceptanceStats

__all__ = ["write_report", "render_report_html"]

_log = logging.getLogger(__name__)

_COLORS = {"accepted": "#2e7d32", "rejected": "#c62828", "rerandomized": "#f9a825", "held_back": "#6a1b9a"}


def _plots(stats: AcceptanceStats, gate_config: dict[str, Any]) -> dict[str, str]:
    use_agg()
    import matplotlib.pyplot as plt

    rows = stats.rows()
    names = [r.class_name for r in rows]
    out: dict[str, str] = {}
    width = max(6.0, 0.8 * len(names) + 2)

    fig, ax = plt.subplots(figsize=(width, 4))
    bottom = [0] * len(rows)
    for key, label in (
        ("accepted", "accepted"),
        ("rejected", "rejected"),
        ("rerandomized", "re-randomized"),
        ("held_back", "held back"),
    ):
        vals = [getattr(r, key) for r in rows]
        ax.bar(names, vals, bottom=bottom, label=label, color=_COLORS[key])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("attempts containing the class")
    ax.set_title("Acceptance per class")
    ax.legend(loc="upper right", fontsize=8)
    ax.tick_params(axis="x", rotation=30)
    out["acceptance"] = png_data_uri(fig)

    # The scene-level G first: a naive sensor model typically fails there while every class looks fine.
    scored = [("(scene)", stats.scene_g_values())] if stats.scene_g_values() else []
    scored += [(n, stats.g_values(n)) for n in names if stats.g_values(n)]
    fig, ax = plt.subplots(figsize=(width, 4))
    if scored:
        ax.boxplot([v for _, v in scored], tick_labels=[n for n, _ in scored])
        ax.set_ylim(-0.02, 1.02)
        thresholds = (("g_threshold", "class threshold", "--"), ("scene_threshold", "scene threshold", ":"))
        for key, label, style in thresholds:
            if isinstance(gate_config.get(key), int | float):
                ax.axhline(float(gate_config[key]), color="#c62828", linestyle=style, linewidth=1, label=label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no class was scored", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("G (geometric score)")
    ax.set_title("G distribution: scene and per class")
    ax.tick_params(axis="x", rotation=30)
    out["g_distribution"] = png_data_uri(fig)

    fig, ax = plt.subplots(figsize=(max(width, 8.0), 4))
    timeline = stats.timeline()
    any_js = False
    for n in names:
        pts = [(t.step, t.js) for t in timeline if t.class_name == n and t.js is not None]
        if pts:
            any_js = True
            ax.plot([s for s, _ in pts], [j for _, j in pts], marker=".", label=n)
        q = [t.step for t in timeline if t.class_name == n and t.quarantined]
        if q:
            ax.scatter(q, [1.0] * len(q), marker="|", s=200, color="#6a1b9a")
    if not any_js:
        ax.text(0.5, 0.5, "no JS yet (quarantine window not filled)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("attempt")
    ax.set_ylabel("JS (bits)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title("Semantic JS per class (bars at the top: quarantined)")
    if any_js:
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    out["quarantine_timeline"] = png_data_uri(fig)
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _beam_plot(gap: EffectGap) -> str:
    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {"real": ("real", "#000000", "-"), "without": ("without model", "#c62828", "--")}
    styles["with"] = ("with model", "#2e7d32", "-")
    for key, (label, color, style) in styles.items():
        if key in gap.beam_ratio:
            ax.plot(gap.elevations_deg, gap.beam_ratio[key], style, color=color, marker=".", label=label)
    ax.set_xlabel("beam elevation (deg)")
    ax.set_ylabel("returns per column")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title("Per-beam return ratio")
    ax.legend(loc="lower right", fontsize=8)
    return png_data_uri(fig)


_GAP_LABELS = {
    "range_w1": "range W1",
    "elevation_w1": "elevation W1",
    "beam_ratio_l1": "per-beam return ratio (mean |difference|)",
    "roughness": "roughness (|difference|)",
}


def _effect_section(gap: EffectGap | str | None) -> str:
    """The "Gap without / with the sensor-effect model" section ("" when not asked for)."""
    if gap is None:
        return ""
    e = html.escape
    head = "<h2>Gap to the real reference without / with the sensor-effect model</h2>"
    if isinstance(gap, str):
        return f'{head}\n<p id="effect-gap">Not computed: {e(gap)}.</p>'
    how = (
        "the run's scenes re-rendered clean and with the run's tuned preset"
        if gap.mode == "tuned run"
        else "exported frames vs the same frames through the model"
    )

    def row(name: str, a: float, b: float, unit: str) -> str:
        better = "" if not (np.isfinite(a) and np.isfinite(b)) else ("closer" if b < a else "further")
        return f"<tr><td>{e(name)}</td><td>{a:.4f}</td><td>{b:.4f}</td><td>{e(unit)}</td><td>{better}</td></tr>"

    comp = "\n".join(row(_GAP_LABELS[k], gap.without[k], gap.with_[k], u) for k, u in GAP_STATS.items())
    cls = "\n".join(row(f"range W1: {k}", a, b, "m") for k, (a, b) in gap.per_class.items())
    return f"""{head}
<p id="effect-gap">Model: {e(gap.profile)} &middot; {e(how)} &middot; {gap.frames} synthetic frame(s) per side
against {gap.real_frames} real scan(s), on the model's beam table. Smaller is closer to the real scans.</p>
<table id="effect-gap-table">
<tr><th>distance to real</th><th>without model</th><th>with model</th><th>unit</th><th>with model is</th></tr>
{comp}
{cls}
</table>
<figure><img alt="effect_beam_ratio" id="effect_beam_ratio" src="{_beam_plot(gap)}">
<figcaption>per-beam return ratio: real, without and with the model</figcaption></figure>"""


def _bev_section(views: list[BevView] | str | None) -> str:
    if views is None:
        return ""
    e = html.escape
    head = '<h2 id="bev">Rejected attempts from above</h2>\n'
    if isinstance(views, str):
        return head + f"<p>Not drawn: {e(views)}.</p>"
    figs = []
    for v in views:
        r = v.row
        real = (
            f"nearest real frame: {e(str(v.real_name))} (range W1 {v.distance:.2f} m)"
            if v.real_name is not None
            else "the nearest real frame needs real scans (`simgap report --real DIR`)"
        )
        figs.append(
            f'<figure class="bev"><img alt="bev frame {e(str(r.get("frame_id")))} attempt {e(str(r.get("attempt")))}" '
            f'src="{v.image}"><figcaption>frame {e(str(r.get("frame_id")))}, attempt {e(str(r.get("attempt")))} '
            f"({e(str(r.get('decision')))}); {real}</figcaption></figure>"
        )
    note = (
        "<p>Re-rendered from the manifest rows (same scene, same points as the gate saw); top-down, points coloured "
        "by class, the attempt's failing classes highlighted. Nearest real frame: smallest Wasserstein-1 distance "
        "between the point range distributions.</p>\n"
    )
    return head + note + "\n".join(figs)


def render_report_html(
    stats: AcceptanceStats,
    *,
    title: str,
    run_config: dict[str, Any] | None = None,
    effect: EffectGap | str | None = None,
    bev: list[BevView] | str | None = None,
) -> str:
    """The report page for ``stats`` (see the module docstring); ``effect``: the effect-model section's numbers,
    or why they are missing (None: no section); ``bev``: the bird's-eye views, or why they are missing (None: no
    section)."""
    plots = _plots(stats, dict((run_config or {}).get("gate_config") or {}))
    f = stats.frame_counts
    e = html.escape
    rows_html = "\n".join(
        f"<tr><td>{e(r.class_name)}</td><td>{r.accepted}</td><td>{r.rejected}</td><td>{r.rerandomized}</td>"
        f"<td>{r.held_back}</td><td>{100.0 * r.acceptance_rate:.1f}</td><td>{_fmt(r.mean_g)}</td>"
        f"<td>{_fmt(r.js)}</td><td>{'yes' if r.quarantined else ''}</td></tr>"
        for r in stats.rows()
    )
    imgs = "\n".join(
        f'<figure><img alt="{e(k)}" id="{e(k)}" src="{v}"><figcaption>{e(k.replace("_", " "))}</figcaption></figure>'
        for k, v in plots.items()
    )

    def _margin(kind: str) -> str:
        m = stats.reason_margins(kind) if hasattr(stats, "reason_margins") else None
        return "" if m is None else f"{m[0]:.2f} / {m[1]:.2f} / {m[2]:.2f}"

    reasons_html = "\n".join(
        f"<tr><td>{e(r)}</td><td>{c}</td><td>{_margin(r)}</td></tr>" for r, c in stats.top_reasons(10)
    )
    reasons_table = (
        '<table id="reasons">\n<tr><th>reason (numbers as #)</th><th>attempts</th>'
        "<th>distance / d_max: min / median / max</th></tr>\n"
        f"{reasons_html}\n</table>"
        if reasons_html
        else "<p>No attempt was rejected.</p>"
    )
    cfg = e(json.dumps(run_config or {}, indent=2, sort_keys=True))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
{PAGE_CSS}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 1em; }}
img {{ max-width: 100%; }}
pre {{ background: #f4f4f4; padding: 1em; }}
</style></head><body>
<h1>{e(title)}</h1>
<p>Attempts: {f["attempts"]} &middot; accepted {f["accepted"]} &middot; rejected {f["rejected"]} &middot;
re-randomized {f["rerandomized"]} &middot; held back {f["held_back"]}</p>
<h2>Per-class summary</h2>
<table id="per-class">
<tr><th>class</th><th>accepted</th><th>rejected</th><th>re-randomized</th><th>held back</th><th>acceptance %</th>
<th>mean G</th><th>JS</th><th>quarantined</th></tr>
{rows_html}
</table>
<h2>Most frequent reasons</h2>
{reasons_table}
<h2>Plots</h2>
{imgs}
{_effect_section(effect)}
{_bev_section(bev)}
<h2>Run configuration</h2>
<pre>{cfg}</pre>
</body></html>
"""


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    effects: str | Path | None = None,
    real: str | Path | None = None,
    effect_frames: int = 3,
    bev_frames: int = 3,
    bev_radius: float = 50.0,
) -> Path:
    """Write ``run_dir/report.html`` (or ``out``) for a generation run.

    Args:
        run_dir: a ``simgap generate`` output directory (holding ``manifest.jsonl``), or a manifest file; a
            ``simgap active-learn`` directory gets its learning curves (:mod:`.learning_report`).
        out: the HTML file (default ``<run_dir>/report.html``).
        effects: a tuned profile whose model the effect-gap section applies (a run with a tuned preset uses its
            own); without either, the section only says how to get it.
        real: real scans for that section (default: the run's ``real`` reference directory).
        effect_frames: frames per side of that section (0: no section).
        bev_frames: rejected attempts drawn from above beside their nearest real frame (0: no section; the real
            scans: ``real``, else the run's reference directory).
        bev_radius: half side of those views, metres.

    Returns:
        The path written.

    Raises:
        SimGapInputError: no manifest.
        ExportError: the page could not be written.
    """
    src = Path(run_dir)
    if src.is_dir() and (src / "rounds.jsonl").is_file() and not (src / MANIFEST_NAME).is_file():
        from .learning_report import write_learning_report  # a `simgap active-learn` directory

        return write_learning_report(src, out)
    manifest = src if src.is_file() else src / MANIFEST_NAME
    if not manifest.is_file():
        raise SimGapInputError(f"{manifest}: no manifest (is {src} a simgap generate output directory?)")
    base = manifest.parent
    rows = read_manifest(manifest)
    check_schedule(rows, manifest)
    stats = AcceptanceStats()
    for row in rows:
        if row["domain"] == "synthetic":
            stats.record_row(row)
    run_config = None
    cfg_path = base / RUN_CONFIG_NAME
    if cfg_path.is_file():
        try:
            run_config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            _log.warning("ignoring unreadable %s: %s", cfg_path, exc)
        if not isinstance(run_config, dict):
            _log.warning("ignoring %s: not a JSON object", cfg_path)
            run_config = None
    effect: EffectGap | str | None = None
    if effect_frames > 0:
        try:
            effect = effect_gap(base, rows, run_config, effects=effects, real=real, frames=effect_frames)
        except SimGapInputError as exc:  # e.g. an unreadable reference scan: the rest of the page still helps
            _log.warning("effect-model section skipped: %s", exc)
            effect = str(exc)
    bev: list[BevView] | str | None = None
    if bev_frames > 0:
        try:
            bev = bev_views(rows, run_config, real=real, frames=bev_frames, radius=bev_radius)
        except SimGapInputError as exc:
            _log.warning("bird's-eye section skipped: %s", exc)
            bev = str(exc)
    page = render_report_html(
        stats, title=f"SimGap generation report: {base.name}", run_config=run_config, effect=effect, bev=bev
    )
    target = Path(out) if out is not None else base / "report.html"
    atomic_write_bytes(target, page.encode("utf-8"))
    return target
