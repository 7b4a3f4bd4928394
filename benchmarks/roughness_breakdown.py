"""Where the gate's scene roughness of ``bench_fidelity``'s rendered frames departs from the real held-out scans.

The gate's scene ``roughness`` component (docs/gate.md) is the 1-D W1 between a frame's clipped |range second
difference| on its rings (``FrameStats.scene_roughness``: every point with a surface neighbour on both sides,
clipped at ``ROUGHNESS_CLIP``) and the bank's pooled samples, against a calibrated ``d_max``. This script renders
``bench_fidelity``'s frames (its world, :func:`bench_fidelity.bench_world`, and scene seeds ``SCENE_SEED + i``) and
breaks each frame's roughness samples down by class and by range band, next to the real held-out keyframes
(20-39, the bank) and the fit keyframes (0-19):

- per frame: the gate's roughness score (``distance / d_max``), the samples' mean and quantiles, the share above
  0.01 / 0.03 / 0.05 m and at the clip, and the signed difference of the mean to the bank's;
- that mean difference split into a *composition* part (the frame's class or range-band shares of roughness samples
  against the bank's, at the bank's per-class means) and a *within* part (the frame's per-class means against the
  bank's, at the frame's shares): ``mean - mean_real = sum_c (s_c - s_c^real) m_c^real + sum_c s_c (m_c - m_c^real)``;
- per class and range band, the share of samples and the mean |roughness| of the accepted and rejected frames,
  pooled, against the real sets;
- per class and range band, pooled over the frames: the mean |roughness| of the fit keyframes, the held-out ones
  and the rendered frames, the W1 between each pair and the share at or above 0.05 m (what the sensor model should
  reproduce: the fit keyframes it was fitted on; what the gate judges: the held-out ones).

``tuned`` is the ``tuned`` preset of ``--profile`` (a ``simgap tune`` output, e.g. ``bench_fidelity.py
--save-tuned``), by default the shipped ``hdl-32-nuscenes`` profile's ``realistic`` preset (the ``simgap tune``
output on keyframes 0-19 at the default search seed when it was last re-fitted); ``ideal`` renders the ``hdl-32``
``ideal`` preset for contrast.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/roughness_breakdown.py [--frames 20] [--presets tuned,ideal]
        [--profile TUNED.toml] [--device cpu] [--real DIR] [--fit 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)
from bench_fidelity import SCENE_SEED, bench_world

__all__ = ["main", "breakdown"]

_DEFAULT_REAL = realdata_root() / NUSCENES
# Range bands (metres) and the classes broken out; any other class counts as "other".
BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, np.inf))
CLASSES = ("ground", "building", "vegetation", "vehicle", "pole")
THRESHOLDS = (0.01, 0.03, 0.05)


def _samples(stats: Any) -> dict[str, np.ndarray]:
    """A frame's roughness samples as the gate takes them (clipped |r| of every defined point), with their class
    name and range: ``{"r": (R,), "cls": (R,) str, "range": (R,)}``."""
    from simgap_ext.gate.frame_stats import ROUGHNESS_CLIP

    ok = np.isfinite(stats.roughness)
    names = np.array([c if c in CLASSES else "other" for c in stats.class_list] or ["other"])
    return {
        "r": np.minimum(np.abs(stats.roughness[ok]), ROUGHNESS_CLIP).astype(np.float64),
        "cls": names[stats.class_of_point[ok]],
        "range": stats.ranges[ok].astype(np.float64),
    }


def _groups(s: dict[str, np.ndarray], by: str) -> dict[str, np.ndarray]:
    if by == "class":
        return {c: s["cls"] == c for c in (*CLASSES, "other")}
    return {_band_name(lo, hi): (s["range"] >= lo) & (s["range"] < hi) for lo, hi in BANDS}


def _band_name(lo: float, hi: float) -> str:
    return f"{lo:.0f}-{hi:.0f} m" if np.isfinite(hi) else f">{lo:.0f} m"


def _shares_means(s: dict[str, np.ndarray], by: str) -> tuple[dict[str, float], dict[str, float]]:
    n = max(1, s["r"].size)
    groups = _groups(s, by)
    share = {g: float(m.sum()) / n for g, m in groups.items()}
    mean = {g: float(s["r"][m].mean()) if m.any() else float("nan") for g, m in groups.items()}
    return share, mean


def _split(frame: dict[str, np.ndarray], real: dict[str, np.ndarray], by: str) -> dict[str, tuple[float, float]]:
    """Per group: (composition part, within part) of ``mean(frame) - mean(real)``; they sum to the difference."""
    s_f, m_f = _shares_means(frame, by)
    s_r, m_r = _shares_means(real, by)
    out = {}
    for g in s_f:
        mr = m_r[g] if np.isfinite(m_r[g]) else 0.0
        mf = m_f[g] if np.isfinite(m_f[g]) else mr
        out[g] = ((s_f[g] - s_r[g]) * mr, s_f[g] * (mf - mr))
    return out


def _pool(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([it[k] for it in items]) for k in ("r", "cls", "range")}


def breakdown(
    real_dir: Path,
    *,
    n_fit: int,
    frames: int,
    presets: list[str],
    device: str | None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Render and measure (see the module docstring); returns a dict of the per-frame rows and pooled tables."""
    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import load_real_scans

    base = load_sensor_profile("hdl-32")
    if profile is None:
        tuned, tuned_preset = load_sensor_profile("hdl-32-nuscenes"), "realistic"
    else:
        tuned, tuned_preset = load_sensor_profile(str(profile)), "tuned"
    _, real_frames = load_real_scans(real_dir, base)
    fit, held = real_frames[:n_fit], real_frames[n_fit:]
    config = GateConfig()
    bank = ReferenceBank.build(held, config=config, device=device)
    gate = FrameGate(bank, config, device=device, quarantine=False)
    spec = gate.stats_spec()
    out: dict[str, Any] = {
        "d_max": float(bank.scene_d_max("roughness")),
        "real held-out": _pool([_samples(spec(f)) for f in held]),
        "real fit": _pool([_samples(spec(f)) for f in fit]),
    }
    sources = {
        "tuned": lambda: WarpLidarSource(tuned, tuned_preset, device=device, randomizer=bench_world(tuned)),
        "ideal": lambda: WarpLidarSource(
            "hdl-32", "ideal", device=device, rotation_rate_hz=20.0, randomizer=bench_world(base)
        ),
    }
    for name in presets:
        src = sources[name]()
        rows = []
        for i in range(frames):
            frame = src.render(seed=SCENE_SEED + i, frame_id=i)
            decision = gate.evaluate(frame, update_quarantine=False)
            ev = decision.scene_evidence.get("roughness")
            rows.append(
                {
                    "frame": i,
                    "accepted": bool(decision.accepted),
                    "score": float(decision.scene_components.get("roughness", np.nan)),
                    "distance": float(ev[0]) if ev is not None else float("nan"),
                    "samples": _samples(spec(frame)),
                }
            )
            print(f"  {name} frame {i}: rendered", file=sys.stderr, flush=True)
        out[name] = rows
    return out


def _row(label: str, s: dict[str, np.ndarray], real_mean: float, extra: str = "") -> str:
    r = s["r"]
    q = np.quantile(r, (0.5, 0.9, 0.99)) if r.size else (np.nan,) * 3
    above = " ".join(f"{(r > t).mean():6.3f}" for t in THRESHOLDS)
    return (
        f"{label:<26} {extra:>13} {r.size:7d} {r.mean():8.4f} {r.mean() - real_mean:+8.4f} "
        f"{q[0]:7.4f} {q[1]:7.4f} {q[2]:7.4f} {above} {(r >= 0.0999).mean():6.3f}"
    )


def _print_cells(res: dict[str, Any], presets: list[str]) -> None:
    """Per class x range band, pooled: mean |r| and share >= 0.05 m of fit, held-out and rendered; W1 of each pair."""
    from simgap_ext.metrics import wasserstein_1d

    fit, held = res["real fit"], res["real held-out"]
    for name in presets:
        rend = _pool([r["samples"] for r in res[name]])
        print()
        print(f"{name} by class x range band, pooled over the frames: mean |r| m, W1 m, share >= 0.05 m")
        head = (
            f"{'class':<11} {'band':>8} {'n fit':>7} {'n held':>7} {'n rend':>7} | {'fit':>7} {'held':>7} "
            f"{'rend':>7} | {'W1 r-fit':>8} {'r-held':>7} {'fit-held':>8} | {'>=.05 fit':>9} {'held':>6} {'rend':>6}"
        )
        print(head)
        print("-" * len(head))
        for cls in ("all", *CLASSES[:4]):
            for lo, hi in ((0.0, np.inf), *BANDS):
                parts = []
                for s in (fit, held, rend):
                    m = (s["range"] >= lo) & (s["range"] < hi)
                    if cls != "all":
                        m &= s["cls"] == cls
                    parts.append(s["r"][m])
                if min(p.size for p in parts) < 50:
                    continue
                f, h, t = parts
                band = "all" if lo == 0 and not np.isfinite(hi) else _band_name(lo, hi)
                print(
                    f"{cls:<11} {band:>8} {f.size:7d} {h.size:7d} {t.size:7d} | {f.mean():7.4f} {h.mean():7.4f} "
                    f"{t.mean():7.4f} | {wasserstein_1d(t, f):8.4f} {wasserstein_1d(t, h):7.4f} "
                    f"{wasserstein_1d(f, h):8.4f} | {(f >= 0.05).mean():9.3f} {(h >= 0.05).mean():6.3f} "
                    f"{(t >= 0.05).mean():6.3f}"
                )


def _print(res: dict[str, Any], presets: list[str]) -> None:
    real = res["real held-out"]
    rm = float(real["r"].mean())
    print(f"scene roughness d_max {res['d_max']:.5f} m (bank of the held-out keyframes)")
    head = (
        f"{'set / frame':<26} {'score (d/dmax)':>13} {'samples':>7} {'mean m':>8} {'vs real':>8} "
        f"{'q50':>7} {'q90':>7} {'q99':>7} " + " ".join(f">{t:<5}" for t in THRESHOLDS) + "   clip"
    )
    print(head)
    print("-" * len(head))
    print(_row("real held-out (20-39)", real, rm))
    print(_row("real fit (0-19)", res["real fit"], rm))
    for name in presets:
        for row in res[name]:
            tag = "" if row["accepted"] else "  REJECTED"
            extra = f"{row['score']:.2f} ({row['distance'] / res['d_max']:.2f})"
            print(_row(f"{name} {row['frame']:2d}{tag}", row["samples"], rm, extra))
    for by in ("class", "range band"):
        key = "class" if by == "class" else "band"
        groups = list(_groups(real, key))
        print()
        print(f"by {by}: share of roughness samples / mean |r| (m) / share > 0.03 m; pooled frames")
        head = f"{'set':<28}" + "".join(f" {g:>24}" for g in groups)
        print(head)
        print("-" * len(head))
        sets = [("real held-out (20-39)", real), ("real fit (0-19)", res["real fit"])]
        for name in presets:
            acc = [r["samples"] for r in res[name] if r["accepted"]]
            rej = [r["samples"] for r in res[name] if not r["accepted"]]
            if acc:
                sets.append((f"{name} accepted ({len(acc)})", _pool(acc)))
            if rej:
                sets.append((f"{name} rejected ({len(rej)})", _pool(rej)))
        for label, s in sets:
            share, mean = _shares_means(s, key)
            cells = []
            for g, m in _groups(s, key).items():
                hi = float((s["r"][m] > 0.03).mean()) if m.any() else float("nan")
                cells.append(f" {share[g]:6.3f} {mean[g]:8.4f} {hi:6.3f}  ")
            print(f"{label:<28}" + "".join(f"{c:>25}" for c in cells))
        print()
        print(f"mean |r| difference to the real held-out scans, split by {by}: composition + within (x 1e-4 m)")
        head = f"{'frame':<28} {'total':>7}" + "".join(f" {g:>17}" for g in groups)
        print(head)
        print("-" * len(head))
        for name in presets:
            for row in res[name]:
                s = row["samples"]
                parts = _split(s, real, key)
                tag = "" if row["accepted"] else " REJ"
                total = (s["r"].mean() - rm) * 1e4
                cells = "".join(f" {1e4 * c:+8.1f} {1e4 * w:+8.1f}" for c, w in parts.values())
                print(f"{name + ' ' + str(row['frame']) + tag:<28} {total:+7.1f}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="fit keyframes; the rest are the bank (default 20)")
    parser.add_argument("--frames", type=int, default=20, help="rendered frames per preset (default 20)")
    parser.add_argument("--presets", default="tuned,ideal", help="comma-separated: tuned, ideal (default both)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="tuned profile TOML (default: the shipped hdl-32-nuscenes)"
    )
    args = parser.parse_args(argv)
    presets = [p for p in args.presets.split(",") if p]
    unknown = sorted(set(presets) - {"tuned", "ideal"})
    if unknown:
        parser.error(f"unknown preset(s) {unknown} (known: tuned, ideal)")
    if not args.real.is_dir():
        parser.error(f"real scans not found: {args.real}")
    t0 = time.perf_counter()
    if args.profile is not None and not args.profile.is_file():
        parser.error(f"--profile: {args.profile} not found")
    res = breakdown(
        args.real, n_fit=args.fit, frames=args.frames, presets=presets, device=args.device, profile=args.profile
    )
    _print(res, presets)
    _print_cells(res, presets)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
