"""Composition-study results: per-unit metrics from confusion matrices, their spread over seeds, CSV and HTML.

Metrics of one training, on the held-out real scans (rows of the confusion matrix = truth):

- IoU per class: ``TP / (TP + FP + FN)``; undefined (``None``) when the class is neither in the labels nor in the
  predictions;
- mIoU: mean of the defined IoUs; *common* / *tail* mIoU: the same over the common / tail classes (tail: the
  real training points per class at or below the tail percentile, see :mod:`.runner`);
- false-positive rate per class: ``FP / (points of other classes)``, the share of points of other classes
  predicted as the class;
- accuracy: share of points predicted right.

Across seeds each metric is reported as mean and sample standard deviation (``ddof=1``; 0 for one seed) of the
seeds where it is defined. The real-only ratio is the baseline of both arms (one training per seed).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "unit_metrics",
    "Cell",
    "aggregate",
    "summary_rows",
    "write_csv",
    "curve_png",
    "render_html",
    "write_report",
    "SUMMARY_COLUMNS",
]

#: Columns of :func:`summary_rows` (metric columns hold ``(mean, std, n)``).
SUMMARY_COLUMNS = ("ratio", "arm", "seeds", "miou", "common_miou", "tail_miou", "accuracy", "mean_fpr")


def _mean_defined(values: Sequence[float | None]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def unit_metrics(confusion: Sequence[Sequence[int]], classes: Sequence[str], tail: Sequence[str]) -> dict[str, Any]:
    """Metrics of one training from its (C, C) int confusion matrix (rows = truth, columns = prediction).

    Returns:
        {"iou": {class: float | None}, "fpr": {class: float | None}, "miou", "common_miou", "tail_miou",
        "accuracy", "mean_fpr"} (floats NaN when undefined).
    """
    conf = np.asarray(confusion, dtype=np.int64)
    c = len(classes)
    if conf.shape != (c, c):
        raise ValueError(f"confusion matrix of shape {conf.shape} for {c} classes")
    tp = np.diag(conf).astype(np.float64)
    truth, pred = conf.sum(1).astype(np.float64), conf.sum(0).astype(np.float64)
    total = float(conf.sum())
    denom = truth + pred - tp
    negatives = total - truth
    iou = {n: (float(tp[i] / denom[i]) if denom[i] > 0 else None) for i, n in enumerate(classes)}
    fpr = {n: (float((pred[i] - tp[i]) / negatives[i]) if negatives[i] > 0 else None) for i, n in enumerate(classes)}
    tail_set = set(tail)
    return {
        "iou": iou,
        "fpr": fpr,
        "miou": _mean_defined(list(iou.values())),
        "common_miou": _mean_defined([v for k, v in iou.items() if k not in tail_set]),
        "tail_miou": _mean_defined([v for k, v in iou.items() if k in tail_set]),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_fpr": _mean_defined(list(fpr.values())),
    }


@dataclass(frozen=True)
class Cell:
    """A metric over seeds.

    Attributes:
        mean: mean over the seeds where it is defined (NaN when none).
        std: sample standard deviation (0 for one seed, NaN for none).
        n: seeds where it is defined.
        values: per seed, in seed order (NaN where undefined).
    """

    mean: float
    std: float
    n: int
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Cell:
        """Aggregate per-seed values (``None``/NaN = undefined)."""
        vals = tuple(float("nan") if v is None else float(v) for v in values)
        ok = np.array([v for v in vals if math.isfinite(v)], dtype=np.float64)
        if ok.size == 0:
            return cls(float("nan"), float("nan"), 0, vals)
        return cls(float(ok.mean()), float(ok.std(ddof=1)) if ok.size > 1 else 0.0, int(ok.size), vals)

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """``"52.3 ± 1.2"`` (scaled; ``-`` when undefined)."""
        if self.n == 0:
            return "-"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


def aggregate(
    records: Sequence[Mapping[str, Any]], classes: Sequence[str], tail: Sequence[str], ratios: Sequence[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Metrics per (ratio, arm) over seeds.

    The real-only ratio's records (arm ``real``) appear under both arms ``gated`` and ``ungated`` present in
    ``records``, so that each arm reads as a full curve.

    Returns:
        (ratio label, arm) -> {"seeds": [...], "miou": Cell, ..., "iou": {class: Cell}, "fpr": {class: Cell}},
        in ``ratios`` order then arm order.
    """
    arms = [a for a in ("gated", "ungated") if any(r["arm"] == a for r in records)] or ["gated"]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ratio in ratios:
        for arm in arms:
            recs = sorted(
                (r for r in records if r["ratio"] == ratio and r["arm"] in (arm, "real")), key=lambda r: r["seed"]
            )
            if not recs:
                continue
            ms = [unit_metrics(r["confusion"], classes, tail) for r in recs]
            cell: dict[str, Any] = {"seeds": [r["seed"] for r in recs], "arm_trained": recs[0]["arm"]}
            for k in SUMMARY_COLUMNS[3:]:
                cell[k] = Cell.of([m[k] for m in ms])
            cell["iou"] = {c: Cell.of([m["iou"][c] for m in ms]) for c in classes}
            cell["fpr"] = {c: Cell.of([m["fpr"][c] for m in ms]) for c in classes}
            out[(ratio, arm)] = cell
    return out


def summary_rows(agg: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (ratio, arm) with the :data:`SUMMARY_COLUMNS` (metric columns are :class:`Cell`)."""
    return [{"ratio": ratio, "arm": arm, "seeds": len(cell["seeds"]), **{k: cell[k] for k in SUMMARY_COLUMNS[3:]}}
            for (ratio, arm), cell in agg.items()]  # fmt: skip


def write_csv(agg: Mapping[tuple[str, str], Mapping[str, Any]], classes: Sequence[str]) -> str:
    """Long-format CSV text: ``ratio,arm,metric,class,mean,std,n,values`` (values: per seed, ``;``-separated)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ratio", "arm", "metric", "class", "mean", "std", "n", "values"])

    def row(ratio: str, arm: str, metric: str, cls: str, cell: Cell) -> None:
        vals = ";".join("" if not math.isfinite(v) else f"{v:.6f}" for v in cell.values)
        w.writerow([ratio, arm, metric, cls, *(f"{x:.6f}" if math.isfinite(x) else "" for x in (cell.mean, cell.std)),
                    cell.n, vals])  # fmt: skip

    for (ratio, arm), cell in agg.items():
        for k in SUMMARY_COLUMNS[3:]:
            row(ratio, arm, k, "", cell[k])
        for metric in ("iou", "fpr"):
            for c in classes:
                row(ratio, arm, metric, c, cell[metric][c])
    return buf.getvalue()


def _curve_figure(agg: Mapping[tuple[str, str], Mapping[str, Any]], ratios: Sequence[str], shares: Sequence[float]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, metric, title in zip(axes, ("miou", "common_miou", "tail_miou"), ("mIoU", "common classes", "tail classes"),
                                 strict=True):  # fmt: skip
        for arm, style in (("gated", "-o"), ("ungated", "--s")):
            pts = [(s * 100, agg[(r, arm)][metric]) for r, s in zip(ratios, shares, strict=True) if (r, arm) in agg]
            pts = [(x, c) for x, c in pts if c.n]
            if not pts:
                continue
            ax.errorbar([x for x, _ in pts], [c.mean * 100 for _, c in pts], yerr=[c.std * 100 for _, c in pts],
                        fmt=style, capsize=3, label=arm)  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("synthetic share of the training set (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("IoU on held-out real scans (%)")
    axes[0].legend()
    fig.tight_layout()
    return fig


def _class_figure(agg: Mapping[tuple[str, str], Mapping[str, Any]], ratios: Sequence[str], classes: Sequence[str],
                  metric: str, arm: str):  # fmt: skip
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(classes) * max(1, len(ratios)) / 3), 3.8))
    keys = [r for r in ratios if (r, arm) in agg]
    width = 0.8 / max(1, len(keys))
    x = np.arange(len(classes))
    for i, r in enumerate(keys):
        cells = [agg[(r, arm)][metric][c] for c in classes]
        ax.bar(x + i * width - 0.4 + width / 2, [c.mean * 100 if c.n else 0 for c in cells], width,
               yerr=[c.std * 100 if c.n else 0 for c in cells], capsize=2, label=r)  # fmt: skip
    ax.set_xticks(x, classes, rotation=20)
    ax.set_ylabel(("IoU" if metric == "iou" else "false-positive rate") + " (%)")
    ax.set_title(f"{'IoU' if metric == 'iou' else 'false-positive rate'} per class, {arm} synthetic, by real:synthetic")
    ax.legend(fontsize=8, ncol=len(keys))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def curve_png(
    agg: Mapping[tuple[str, str], Mapping[str, Any]], ratios: Sequence[str], shares: Sequence[float]
) -> bytes:
    """The mIoU / common / tail curves as PNG bytes (for docs)."""
    import matplotlib.pyplot as plt

    from ..plots import use_agg

    use_agg()
    fig = _curve_figure(agg, ratios, shares)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _table_html(rows: Sequence[Sequence[str]], head: Sequence[str]) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_html(
    agg: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    ratios: Sequence[str],
    shares: Sequence[float],
    classes: Sequence[str],
    tail: Sequence[str],
    info: Mapping[str, Any],
) -> str:
    """The self-contained HTML report (tables and embedded PNG plots).

    Args:
        agg: :func:`aggregate`'s result.
        ratios: ratio labels in order; shares: their synthetic shares in [0, 1].
        classes: study classes; tail: tail classes.
        info: key -> value lines shown at the top (pools, sizes, settings).
    """
    from ..plots import PAGE_CSS, png_data_uri, use_agg

    use_agg()
    summary = [[r["ratio"], r["arm"], str(r["seeds"]), *(r[k].text() for k in SUMMARY_COLUMNS[3:7]),
                r["mean_fpr"].text(digits=2)] for r in summary_rows(agg)]  # fmt: skip
    head = ["real:synthetic", "arm", "seeds", "mIoU", "common mIoU", "tail mIoU", "accuracy", "mean FPR"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>SimGap composition study</title>",
        f"<style>{PAGE_CSS}\nimg {{ max-width: 100%; }} td:first-child, th:first-child {{ text-align: left; }}</style>",
        "</head><body><h1>Composition study</h1>",
        _table_html([[k, str(v)] for k, v in info.items()], ["setting", "value"]),
        f"<p>Tail classes: {html.escape(', '.join(tail) or '-')}. Values: mean ± standard deviation over seeds, "
        "percent, on the held-out real scans.</p>",
        "<h2>Summary</h2>",
        _table_html(summary, head),
        f"<img src='{png_data_uri(_curve_figure(agg, ratios, shares))}' alt='mIoU vs synthetic share'>",
    ]
    for metric, title in (("iou", "IoU per class"), ("fpr", "False-positive rate per class")):
        parts.append(f"<h2>{title}</h2>")
        rows = [[ratio, arm, *(cell[metric][c].text(digits=1 if metric == "iou" else 2) for c in classes)]
                for (ratio, arm), cell in agg.items()]  # fmt: skip
        parts.append(_table_html(rows, ["real:synthetic", "arm", *classes]))
        for arm in ("gated", "ungated"):
            if any(a == arm for _, a in agg):
                parts.append(f"<img src='{png_data_uri(_class_figure(agg, ratios, classes, metric, arm))}' alt=''>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(out: str | Path, settings: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                 info: Mapping[str, Any] | None = None) -> dict[tuple[str, str], dict[str, Any]]:  # fmt: skip
    """Aggregate ``records`` and write ``out/summary.csv``, ``out/study.png`` and ``out/report.html`` atomically.

    Args:
        out: the study directory.
        settings: ``study.json``'s content (classes, tail classes, ratios).
        records: the unit records.
        info: extra lines for the HTML header.

    Returns:
        :func:`aggregate`'s result.
    """
    from fractions import Fraction

    from ..data.atomic import atomic_write_bytes

    out_dir = Path(out)
    classes, tail = list(settings["classes"]), list(settings["tail_classes"])
    ratios = list(settings["config"]["ratios"])
    shares = [float(Fraction(int(r.split(":")[1]), sum(int(x) for x in r.split(":")))) for r in ratios]
    agg = aggregate(records, classes, tail, ratios)
    atomic_write_bytes(out_dir / "summary.csv", write_csv(agg, classes).encode("utf-8"))
    atomic_write_bytes(out_dir / "study.png", curve_png(agg, ratios, shares))
    lines = {"training-set size": settings["total"], "trainings": len(records), **(info or {})}
    page = render_html(agg, ratios=ratios, shares=shares, classes=classes, tail=tail, info=lines)
    atomic_write_bytes(out_dir / "report.html", page.encode("utf-8"))
    return agg
