"""Stratified real:synthetic mixing into train/val manifests (docs/pipeline.md, "Mixing").

Definitions (written down because the seed leaves them open):

- *class frequency*: the number of real samples (manifest rows) in which the class has at least one point;
  a class seen only in synthetic data has frequency 0.
- *buckets*: ``tail`` = classes at or below the ``tail_percentile``-th percentile of the real frequencies
  (:func:`~simgap_ext.gate.identify_tail_classes`, the gate's definition); ``head`` = the remaining classes at or
  above the ``head_percentile``-th percentile; ``body`` = the rest. Percentiles are taken over the classes of the
  real data only; a class seen only in synthetic data is ``tail``.
- a *sample's bucket* is the bucket of its rarest class (lowest real frequency, ties by name), ignoring
  ``ignore_classes`` (default ``unlabeled``); a sample with no other class is ``head``.
- *ratio* is the synthetic share of each bucket. With ``ratio = p/q`` in lowest terms (a fraction with
  denominator <= 100), a bucket with ``R`` real and ``S`` synthetic samples takes ``u = min(R // (q-p), S // p)``
  units of ``q-p`` real + ``p`` synthetic samples, so the ratio is exact; ratio 0 takes every real sample and
  ratio 1 every synthetic one. Samples are drawn with ``numpy.random.default_rng([seed, bucket number])``.
- *split*: ``round(u * val_fraction)`` units of each bucket go to ``val`` (same ratio), the rest to ``train``.

Only synthetic rows with decision ``accepted`` (exported) are eligible; every real row is.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import ManifestWriter, read_manifest, resolve_row_path, validate_manifest_row
from ..errors import SimGapInputError
from ..gate import identify_tail_classes

__all__ = [
    "BUCKETS",
    "MixResult",
    "class_frequencies",
    "frequency_buckets",
    "sample_bucket",
    "mix_rows",
    "mix_manifests",
]

_log = logging.getLogger(__name__)

BUCKETS = ("head", "body", "tail")


@dataclass
class MixResult:
    """A stratified mix.

    Attributes:
        train, val: the mixed rows (paths relative to the output directory once written).
        buckets: bucket -> {"real_available", "synthetic_available", "real", "synthetic", "train_real",
            "train_synthetic", "val_real", "val_synthetic"}.
        class_buckets: class -> bucket.
        class_table: class -> {"bucket", "real_frequency", "train_real", "train_synthetic", "val_real",
            "val_synthetic"} (samples containing the class).
        ratio: the synthetic share used (exact fraction).
    """

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    buckets: dict[str, dict[str, int]]
    class_buckets: dict[str, str]
    class_table: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratio: Fraction = Fraction(1, 2)


def _classes(row: Mapping[str, Any]) -> list[str]:
    return sorted(c for c, n in (row.get("class_points") or {}).items() if int(n) > 0)


def class_frequencies(real_rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Class -> number of real rows containing it (at least one point)."""
    freq: dict[str, int] = {}
    for row in real_rows:
        for c in _classes(row):
            freq[c] = freq.get(c, 0) + 1
    return dict(sorted(freq.items()))


def frequency_buckets(
    frequencies: Mapping[str, int],
    *,
    tail_percentile: float = 20.0,
    head_percentile: float = 80.0,
    extra_classes: Iterable[str] = (),
) -> dict[str, str]:
    """Class -> ``head``/``body``/``tail`` (see the module docstring); ``extra_classes`` absent from
    ``frequencies`` (seen only in synthetic data) are ``tail``."""
    if not 0.0 <= tail_percentile <= head_percentile <= 100.0:
        raise SimGapInputError(
            f"need 0 <= tail_percentile <= head_percentile <= 100, got {tail_percentile}, {head_percentile}"
        )
    freq = {str(k): int(v) for k, v in frequencies.items()}
    out: dict[str, str] = {}
    if freq:
        tail = set(identify_tail_classes(freq, tail_percentile))
        head_cut = float(np.percentile(np.fromiter(freq.values(), dtype=np.float64), head_percentile))
        for c, f in freq.items():
            out[c] = "tail" if c in tail else ("head" if f >= head_cut else "body")
    # Classes real data never shows are as rare as it gets; they do not move the real percentiles.
    for c in extra_classes:
        out.setdefault(str(c), "tail")
    return dict(sorted(out.items()))


def sample_bucket(
    row: Mapping[str, Any],
    frequencies: Mapping[str, int],
    class_buckets: Mapping[str, str],
    *,
    ignore_classes: Sequence[str] = ("unlabeled",),
) -> str:
    """The bucket of a sample's rarest class (``head`` when it has no class outside ``ignore_classes``)."""
    classes = [c for c in _classes(row) if c not in set(ignore_classes)]
    if not classes:
        return "head"
    rarest = min(classes, key=lambda c: (frequencies.get(c, 0), c))
    return class_buckets.get(rarest, "tail")


def _as_fraction(ratio: float) -> Fraction:
    r = float(ratio)
    if not (math.isfinite(r) and 0.0 <= r <= 1.0):
        raise SimGapInputError(f"ratio (synthetic share) must lie in [0, 1], got {ratio}")
    return Fraction(r).limit_denominator(100)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def mix_rows(
    real_rows: Sequence[Mapping[str, Any]],
    synthetic_rows: Sequence[Mapping[str, Any]],
    *,
    ratio: float = 0.5,
    val_fraction: float = 0.2,
    seed: int = 0,
    tail_percentile: float = 20.0,
    head_percentile: float = 80.0,
    ignore_classes: Sequence[str] = ("unlabeled",),
) -> MixResult:
    """Stratified mix of manifest rows (paths untouched; see :func:`mix_manifests` for files).

    Args:
        real_rows: rows with ``domain == "real"`` (others are skipped).
        synthetic_rows: rows with ``domain == "synthetic"``; only ``accepted`` rows are used.
        ratio: synthetic share per bucket in [0, 1] (0.5: 50:50).
        val_fraction: share of each bucket's units that go to validation, in [0, 1].
        seed: sampling seed.
        tail_percentile, head_percentile: bucket cut-offs on real class frequency.
        ignore_classes: classes that never decide a sample's bucket.

    Returns:
        A :class:`MixResult`.

    Raises:
        SimGapInputError: bad ratio/val_fraction or no real rows.
    """
    frac = _as_fraction(ratio)
    if not (math.isfinite(float(val_fraction)) and 0.0 <= float(val_fraction) <= 1.0):
        raise SimGapInputError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    real = [dict(r) for r in real_rows if r.get("domain") == "real"]
    synth = [dict(r) for r in synthetic_rows if r.get("domain") == "synthetic" and r.get("decision") == "accepted"]
    if not real:
        raise SimGapInputError("the real manifest has no real rows to mix")
    freq = class_frequencies(real)
    extra = {c for r in synth for c in _classes(r)}
    cb = frequency_buckets(freq, tail_percentile=tail_percentile, head_percentile=head_percentile, extra_classes=extra)
    by_bucket: dict[str, dict[str, list[int]]] = {b: {"real": [], "synthetic": []} for b in BUCKETS}
    for dom, rows in (("real", real), ("synthetic", synth)):
        for i, r in enumerate(rows):
            by_bucket[sample_bucket(r, freq, cb, ignore_classes=ignore_classes)][dom].append(i)
    p, q = frac.numerator, frac.denominator
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    table: dict[str, dict[str, int]] = {}
    for b_idx, bucket in enumerate(BUCKETS):
        avail_r, avail_s = by_bucket[bucket]["real"], by_bucket[bucket]["synthetic"]
        rng = np.random.default_rng([int(seed), b_idx])
        perm_r = [avail_r[i] for i in rng.permutation(len(avail_r))]
        perm_s = [avail_s[i] for i in rng.permutation(len(avail_s))]
        if p == 0:
            n_r, n_s = len(perm_r), 0
            v_r, v_s = _round_half_up(n_r * val_fraction), 0
        elif p == q:
            n_r, n_s = 0, len(perm_s)
            v_r, v_s = 0, _round_half_up(n_s * val_fraction)
        else:
            units = min(len(perm_r) // (q - p), len(perm_s) // p)
            v_units = _round_half_up(units * val_fraction)
            n_r, n_s = units * (q - p), units * p
            v_r, v_s = v_units * (q - p), v_units * p
        picked = {
            ("real", "val"): sorted(perm_r[:v_r]),
            ("real", "train"): sorted(perm_r[v_r:n_r]),
            ("synthetic", "val"): sorted(perm_s[:v_s]),
            ("synthetic", "train"): sorted(perm_s[v_s:n_s]),
        }
        for split, out in (("train", train), ("val", val)):
            for dom, rows in (("real", real), ("synthetic", synth)):
                for i in picked[(dom, split)]:
                    out.append({**rows[i], "bucket": bucket, "split": split})
        table[bucket] = {
            "real_available": len(avail_r),
            "synthetic_available": len(avail_s),
            "real": n_r,
            "synthetic": n_s,
            "train_real": n_r - v_r,
            "train_synthetic": n_s - v_s,
            "val_real": v_r,
            "val_synthetic": v_s,
        }
    if not train and not val:
        # Valid (e.g. no accepted synthetic sample yet) but almost certainly not what was asked for: say why.
        _log.warning(
            "the mix is empty: %d real and %d accepted synthetic rows give no complete %d real : %d synthetic unit "
            "in any bucket",
            len(real),
            len(synth),
            q - p,
            p,
        )
    class_table: dict[str, dict[str, Any]] = {
        c: {"bucket": b, "real_frequency": freq.get(c, 0), "train_real": 0, "train_synthetic": 0, "val_real": 0,
            "val_synthetic": 0}
        for c, b in cb.items()
    }  # fmt: skip
    for split, rows in (("train", train), ("val", val)):
        for r in rows:
            for c in _classes(r):
                class_table[c][f"{split}_{r['domain']}"] += 1
    return MixResult(train, val, table, cb, class_table, frac)


def _load(path: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    from .run_dir import MANIFEST_NAME, check_schedule

    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    rows = read_manifest(p)
    check_schedule(rows, p)
    return p, rows


def _rebase(row: dict[str, Any], manifest: Path, out_dir: Path) -> dict[str, Any]:
    row = dict(row)
    for key in ("path", "label_path"):
        target = resolve_row_path(manifest, row, key)
        if target is not None:
            row[key] = Path(os.path.relpath(target, out_dir.resolve())).as_posix()
    row["source_manifest"] = Path(os.path.relpath(manifest.resolve(), out_dir.resolve())).as_posix()
    return validate_manifest_row(row)


def mix_manifests(
    real_manifest: str | Path,
    synthetic_manifest: str | Path,
    out_dir: str | Path,
    **kwargs: Any,
) -> MixResult:
    """Mix two manifests and write ``out_dir/train.jsonl`` and ``out_dir/val.jsonl``.

    Args:
        real_manifest: a real manifest (``.jsonl``; see :func:`~.real_manifest.build_real_manifest`).
        synthetic_manifest: a generation run's manifest, or its run directory.
        out_dir: output directory; row paths are rewritten relative to it.
        **kwargs: passed to :func:`mix_rows`.

    Returns:
        The :class:`MixResult` (rows as written).
    """
    out = Path(out_dir)
    real_path, real_rows = _load(real_manifest)
    synth_path, synth_rows = _load(synthetic_manifest)
    result = mix_rows(real_rows, synth_rows, **kwargs)
    out.mkdir(parents=True, exist_ok=True)
    src = {"real": real_path, "synthetic": synth_path}
    for name in ("train", "val"):
        rows = [_rebase(r, src[r["domain"]], out) for r in getattr(result, name)]
        setattr(result, name, rows)
        target = out / f"{name}.jsonl"
        tmp = out / f".{name}.jsonl.partial"
        if tmp.exists():
            tmp.unlink()
        with ManifestWriter(tmp) as w:
            for r in rows:
                w.append(r)
        os.replace(tmp, target)
    _log.info("mixed %d train / %d val rows into %s", len(result.train), len(result.val), out)
    return result
