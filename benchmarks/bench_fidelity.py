"""Sensor-effect fidelity: how close `ideal`, shipped `realistic` and `tuned` embedded frames are to real scans.

Real data: the 40 consecutive nuScenes-lidarseg HDL-32E keyframes of ``../shared/realdata/nuscenes_lidarseg_cascol``
(20 Hz). ``tuned`` is fitted (``simgap tune``, with its CMA-ES search) on the first ``--fit`` keyframes (one stretch
of the drive) and every statistic is measured against the remaining held-out keyframes (a later stretch). ``ideal``
and ``realistic`` are the shipped ``hdl-32`` presets at ``--rotation-rate 20``, as a user would render them;
``realistic (nuscenes)`` is the shipped ``hdl-32-nuscenes`` profile (``simgap tune`` output on the same fit
keyframes, committed in config/sensors); ``tuned (at rest)`` is ``tuned`` without its motion-skew terms. Every
source renders the same ``--frames`` scene seeds of the embedded street world (the synthetic scenes are not digital
twins of the real ones: these are distribution distances, not paired ones).

Statistics (simgap_ext.tune.stats, all on the measured beam table): range W1 (m), elevation W1 (deg), per-beam
return-ratio L1, roughness (robust along-beam residual, m), points per vehicle cluster vs range (log-log fit:
exponent and points at 10 m), and the gate's acceptance rate (FrameGate, geometric, default gate config) against a
ReferenceBank of the held-out real scans. A row `real (fit stretch)` shows the real-vs-real floor.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_fidelity.py [--real DIR] [--fit 20] [--frames 20]
        [--evaluations N] [--device cpu] [--json OUT] [--sources ROW,ROW] [--explain [ROW ...]]
        [--far-bound] [--shift runs|per-return] [--gate-term|--no-gate-term] [--synthetic-frames N] [--tune-seed S]
        [--save-tuned T.toml] [--reverse]

``--reverse`` is the other fold: ``tuned`` fitted on the last ``--fit`` keyframes, every row measured against the
first ones (the shipped ``realistic`` and ``hdl-32-nuscenes`` rows were derived from those, so there they are
measured on their own fit stretch).
``--explain`` prints each rejected frame's scene components and failing classes with their margins
(``score (distance / d_max)``); below the table a paired bootstrap over the frames says how often a row is closer to
real than ``ideal`` on the points-per-vehicle fit. The tune runs as ``simgap tune`` does by default; ``--far-bound``,
``--shift``, ``--gate-term``, ``--synthetic-frames``, ``--evaluations`` and ``--tune-seed`` (``--seed``) tune as
``simgap tune`` with those flags.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

from simgap_ext.cli.cmd_tune import add_search_options, search_options

__all__ = ["main", "run", "bench_world", "load_fold", "split_stretches", "SCENE_SEED"]

_DEFAULT_REAL = realdata_root() / NUSCENES
# Frame i of every rendered row is scene seed SCENE_SEED + i (the same scenes for every source).
SCENE_SEED = 1000
_STATS = ("range_w1", "elevation_w1", "beam_ratio_l1", "roughness", "object_exponent", "object_n10")


def bench_world(profile: Any) -> Any:
    """The benchmark's scene randomizer for ``profile``: the embedded street world with only the object classes the
    real scans hold (vehicles, pedestrians: the gate rejects a class without real reference) and volumetric foliage
    (docs/backend.md "Scenes"; the default world, stated here so the table says what it ran)."""
    from simgap_ext.backends.warp import RandomizerConfig, SceneRandomizer
    from simgap_ext.backends.warp.labels import PENETRATION_MEAN

    cfg = RandomizerConfig(base_counts={"pedestrian": (1, 3), "vehicle": (2, 4)}, penetration=PENETRATION_MEAN)
    return SceneRandomizer(cfg, sensor_height=profile.mount_height, max_range=profile.max_range)


def split_stretches(n: int, n_fit: int, *, reverse: bool = False) -> tuple[list[int], list[int]]:
    """The fit and held-out keyframe indices of ``n`` consecutive keyframes: the first ``n_fit`` fit and the rest are
    held out (one stretch of the drive against a later one), or with ``reverse`` the last ``n_fit`` fit and the
    first ``n - n_fit`` held out (the other fold)."""
    if not 0 < n_fit < n:
        raise ValueError(f"n_fit must be in 1..{n - 1} for {n} keyframes, got {n_fit}")
    idx = list(range(n))
    if reverse:
        return idx[n - n_fit :], idx[: n - n_fit]
    return idx[:n_fit], idx[n_fit:]


def load_fold(real_dir: Path, base: Any, n_fit: int, *, reverse: bool = False) -> tuple[list, list, list]:
    """The real keyframes of ``real_dir`` read on ``base``'s beam table and split as :func:`split_stretches` does:
    ``(fit scans, fit frames, held-out frames)``; exits when there are not more than ``n_fit + 2`` of them."""
    from simgap_ext.tune.profile import load_real_scans

    scans, frames = load_real_scans(real_dir, base)
    if len(scans) <= n_fit + 2:
        raise SystemExit(f"need more than {n_fit + 2} real scans in {real_dir}, found {len(scans)}")
    fit_idx, held_idx = split_stretches(len(scans), n_fit, reverse=reverse)
    return [scans[i] for i in fit_idx], [frames[i] for i in fit_idx], [frames[i] for i in held_idx]


def run(
    real_dir: Path,
    *,
    n_fit: int,
    frames: int,
    evaluations: int | None,
    device: str | None,
    sources: list[str] | None = None,
    far_bound: bool = False,
    shift_runs: bool | None = None,
    gate_term: bool | None = None,
    synthetic_frames: int | None = None,
    tune_seed: int = 0,
    save_tuned: Path | None = None,
    reverse: bool = False,
) -> dict[str, Any]:
    """Measure every source (or only ``sources``, names of the table's rows; ideal always); returns a JSON-safe dict.

    ``save_tuned``: also write the tuned profile there (TOML, as ``simgap tune --out``), e.g. for
    ``benchmarks/roughness_breakdown.py --profile``. ``reverse``: fit on the last ``n_fit`` keyframes and hold out
    the first ones (the other fold of a two-fold split: whether a row's standing survives swapping the stretches)."""
    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import tune_profile
    from simgap_ext.tune.stats import compare, scene_stats, summarize

    t_start = time.perf_counter()
    base = load_sensor_profile("hdl-32")
    shipped = load_sensor_profile("hdl-32-nuscenes")
    fit_scans, fit_frames, held = load_fold(real_dir, base, n_fit, reverse=reverse)
    t0 = time.perf_counter()
    tuned, report = tune_profile(
        (fit_scans, fit_frames),
        base,
        rotation_rate_hz=20.0,
        evaluations=evaluations,
        device=device,
        far_bound=far_bound,
        shift_runs=shift_runs,
        gate_term=gate_term,
        synthetic_frames=synthetic_frames,
        seed=tune_seed,
    )
    t_tune = time.perf_counter() - t0
    if save_tuned is not None:
        from simgap_ext.data import atomic_write_bytes
        from simgap_ext.sensors import profile_to_toml

        # as simgap tune --out writes it: a crash mid-write leaves no half profile
        text = profile_to_toml(tuned, header=f"bench_fidelity tune, seed {tune_seed}\n")
        atomic_write_bytes(save_tuned, text.encode("utf-8"))
    el, cols = tuned.vertical_angles_deg, tuned.horizontal_resolution
    real_stats = [scene_stats(f, el, cols) for f in held]
    real = summarize(real_stats)

    config = GateConfig()
    bank = ReferenceBank.build(held, config=config, device=device)  # real classes rolled up onto the scene level
    gate = FrameGate(bank, config, device=device, quarantine=False)

    from dataclasses import replace

    from simgap_ext.sensors import EffectSettings, ReadOnlyMapping

    still = tuned.preset("tuned").model.replace(motion_sweep_m=0.0, motion_sweep_sd_m=0.0)
    at_rest = replace(tuned, presets=ReadOnlyMapping({**tuned.presets, "tuned": EffectSettings(model=still)}))
    all_sources = {
        "ideal": WarpLidarSource("hdl-32", "ideal", device=device, rotation_rate_hz=20.0, randomizer=bench_world(base)),
        "realistic": WarpLidarSource(
            "hdl-32", "realistic", device=device, rotation_rate_hz=20.0, randomizer=bench_world(base)
        ),
        "realistic (nuscenes)": WarpLidarSource(shipped, "realistic", device=device, randomizer=bench_world(shipped)),
        "tuned": WarpLidarSource(tuned, "tuned", device=device, randomizer=bench_world(tuned)),
        # ablation: the same fitted model with the sensor at rest (no motion skew; docs/backend.md "Motion skew")
        "tuned (at rest)": WarpLidarSource(at_rest, "tuned", device=device, randomizer=bench_world(at_rest)),
    }
    if sources is not None:
        unknown = sorted(set(sources) - set(all_sources))
        if unknown:
            raise SystemExit(f"bench_fidelity: unknown source(s) {unknown} (known: {', '.join(all_sources)})")
    keep = set(all_sources) if sources is None else {"ideal", *sources}
    rows: dict[str, Any] = {}
    sets: dict[str, list[dict[str, Any]]] = {"real (fit stretch)": [roll_up_frame(f) for f in fit_frames[:frames]]}
    for name, src in all_sources.items():
        if name not in keep:
            continue
        sets[name] = [src.render(seed=SCENE_SEED + i, frame_id=i) for i in range(frames)]
    for name, frs in sets.items():
        stats = [scene_stats(f, el, cols) for f in frs]
        summ = summarize(stats)
        dist = compare(real, summ)
        decisions = [gate.evaluate(f, update_quarantine=False) for f in frs]
        accepted = sum(int(d.accepted) for d in decisions)
        rows[name] = {
            "distances": dist,
            "object_exponent": summ["object_exponent"],
            "object_n10": summ["object_n10"],
            "objects": summ["objects"],
            "roughness_m": summ["roughness"],
            "points_per_frame": summ["points_per_frame"],
            "gate_acceptance": accepted / len(frs),
            "frames": len(frs),
            # Why frames were rejected, and the mean scene component scores: what to look at before tuning.
            "rejections": [r for d in decisions if not d.accepted for r in d.reasons],
            "scene_components": {
                k: float(sum(d.scene_components.get(k, math.nan) for d in decisions) / len(decisions))
                for k in sorted({k for d in decisions for k in d.scene_components})
            },
            "failing": _failing(decisions, config),
            "origin_distance_m": [
                float(d.scene_evidence["origin"][0]) for d in decisions if "origin" in d.scene_evidence
            ],
            # per frame: what the gate saw (margins of every component) and the vehicle clusters (distance, points)
            "per_frame": [
                {"decision": d.to_dict(), "objects": s.objects.tolist()} for d, s in zip(decisions, stats, strict=True)
            ],
        }
    objects = {name: [pf["objects"] for pf in row["per_frame"]] for name, row in rows.items()}
    real_objects = [st.objects.tolist() for st in real_stats]
    return {
        "object_bootstrap": {
            name: object_bootstrap(real_objects, objects["ideal"], objects[name])
            for name in ("tuned", "realistic", "tuned (at rest)")
            if name in objects
        },
        "real": str(real_dir),
        "fit_scans": n_fit,
        "reverse": reverse,
        "held_out_scans": len(held),
        "real_objects": [s.objects.tolist() for s in real_stats],
        "real_summary": {
            "object_exponent": real["object_exponent"],
            "object_n10": real["object_n10"],
            "objects": real["objects"],
            "roughness_m": real["roughness"],
            "points_per_frame": real["points_per_frame"],
        },
        "tune": {
            "seconds": t_tune,
            "classes_searched": list(report["classes"]),
            **{k: v for k, v in report.items() if k != "classes"},
        },
        "tuned_columns": cols,
        "rows": rows,
        "seconds": time.perf_counter() - t_start,
    }


def object_bootstrap(
    real: list[Any], ideal: list[Any], synthetic: list[Any], *, draws: int = 500, seed: int = 0
) -> dict[str, float]:
    """How often ``synthetic`` is closer to ``real`` than ``ideal`` on the points-per-vehicle fit, over bootstrap
    resamples of the frames (the real frames, and the synthetic frames paired by scene seed).

    Each argument is one list per frame of ``(distance, points)`` vehicle clusters. Returns the share of draws in
    which |exponent - real| (``object_exponent``) and |log n10 ratio| (``object_n10``) are smaller for ``synthetic``
    than for ``ideal``, and the bootstrap standard deviation of the real exponent: the statistic's own noise on
    ~6 vehicles per frame, which a difference between two rows must exceed before it means anything.
    """
    import numpy as np

    from simgap_ext.tune.stats import object_fit

    def fit(frames: list[Any], idx: Any) -> tuple[float, float]:
        rows = [np.asarray(frames[i], dtype=np.float64).reshape(-1, 2) for i in idx]
        return object_fit(np.concatenate(rows) if rows else np.zeros((0, 2)))

    rng = np.random.default_rng(seed)
    wins = {"object_exponent": 0, "object_n10": 0}
    real_k, n = [], 0
    for _ in range(draws):
        ri = rng.integers(0, len(real), len(real))
        si = rng.integers(0, len(synthetic), len(synthetic))
        (rk, rn), (ik, i_n), (sk, sn) = fit(real, ri), fit(ideal, si), fit(synthetic, si)
        if not all(math.isfinite(v) for v in (rk, rn, ik, i_n, sk, sn)):
            continue
        n += 1
        real_k.append(rk)
        wins["object_exponent"] += abs(sk - rk) < abs(ik - rk)
        wins["object_n10"] += abs(math.log(sn / rn)) < abs(math.log(i_n / rn))
    out = {k: v / n if n else math.nan for k, v in wins.items()}
    out["real_exponent_sd"] = float(np.std(real_k)) if real_k else math.nan
    return out


def _failing(decisions: list[Any], config: Any) -> dict[str, int]:
    """Frames failing each check: ``scene:<component>`` at or beyond half its d_max (the gate's strict floor),
    ``scene:G`` below the threshold, ``class:<name>`` a failing class."""
    from simgap_ext.gate.gate import STRICT_FLOOR

    out: dict[str, int] = {}
    for d in decisions:
        keys = {
            f"scene:{k}"
            for k, v in d.scene_components.items()
            if config.scene_weights.get(k, 0) > 0 and v < STRICT_FLOOR
        }
        if d.scene_g < config.scene_threshold:
            keys.add("scene:G")
        keys |= {f"class:{c}" for c in d.failing_classes}
        for k in keys:
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def explain(decision: dict[str, Any], scene_threshold: float) -> list[str]:
    """Lines saying why one frame (a ``GateDecision.to_dict()``) was rejected, with the margin of each check.

    A scene component reads ``name score (distance / d_max)``; the gate's strict floor fails a component at a
    score below 0.5 (distance beyond half its d_max), the scene G fails below ``scene_threshold``. A failing class
    lists its components the same way, worst first.
    """
    comps = decision.get("scene_components") or {}
    ev = decision.get("scene_evidence") or {}

    def comp(name: str, score: float | None, e: Any) -> str:
        margin = f" ({e[0]:.3f} / {e[1]:.3f})" if e and None not in e else ""
        return f"{name} {'nan' if score is None else f'{score:.2f}'}{margin}"

    scene = sorted(comps.items(), key=lambda kv: kv[1] if kv[1] is not None else 1.0)
    lines = [
        f"scene G {decision.get('scene_g', 0.0):.3f} (needs >= {scene_threshold}); "
        + ", ".join(comp(k, v, ev.get(k)) for k, v in scene)
    ]
    for cls in (decision.get("per_class") or {}).values():
        if cls.get("passed", True):
            continue
        cc = sorted((cls.get("components") or {}).items(), key=lambda kv: kv[1] if kv[1] is not None else 1.0)
        cev = cls.get("evidence") or {}
        g = cls.get("g")
        lines.append(
            f"class {cls['name']} G {'n/a' if g is None else f'{g:.3f}'} ({cls['n_points']} pts): "
            + ", ".join(comp(k, v, cev.get(k)) for k, v in cc[:4])
            + (f"; {cls['reasons'][0]}" if cls.get("reasons") else "")
        )
    return lines


def _shares(terms: dict[str, Any], classes: list[str]) -> str:
    share = terms.get("drop_offset_isolated") or []
    return ", ".join(f"{c} {v:.2f}" for c, v in zip(classes, share, strict=False)) or "none"


def _fmt(v: float, nd: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="keyframes the tuned model is fitted on (default 20)")
    parser.add_argument("--frames", type=int, default=20, help="synthetic frames per source (default 20)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--sources", default=None, help="comma-separated rows to render (default all; ideal is always rendered)"
    )
    add_search_options(parser)  # --far-bound, --shift, --gate-term, --synthetic-frames, --evaluations: as simgap tune
    parser.add_argument(
        "--tune-seed",
        type=int,
        default=0,
        help="the tune's search seed (simgap tune --seed: CMA-ES and the search's scene seeds; default 0)",
    )
    parser.add_argument(
        "--save-tuned", type=Path, default=None, help="also write the tuned profile (TOML) to this path"
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="fit on the last --fit keyframes and hold out the first ones (the other fold; the shipped profiles "
        "were derived from the first keyframes, so their rows are then measured on their own fit stretch)",
    )
    parser.add_argument(
        "--explain",
        nargs="*",
        default=None,
        metavar="SOURCE",
        help="print each rejected frame's reasons with their margins (default: the tuned row; names: table rows)",
    )
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"bench_fidelity: {args.real} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    sources = None if args.sources is None else [s.strip() for s in args.sources.split(",") if s.strip()]
    res = run(
        args.real,
        n_fit=args.fit,
        frames=args.frames,
        device=args.device,
        sources=sources,
        tune_seed=args.tune_seed,
        save_tuned=args.save_tuned,
        reverse=args.reverse,
        **search_options(args),
    )
    rs = res["real_summary"]
    print(
        f"real held-out: {res['held_out_scans']} nuScenes HDL-32E keyframes ({rs['points_per_frame']:.0f} pts/frame, "
        f"{rs['objects']} vehicle clusters: n = {_fmt(rs['object_n10'], 0)} (d/10 m)^{_fmt(rs['object_exponent'], 2)}, "
        f"roughness {_fmt(rs['roughness_m'], 4)} m); tuned on the {'last' if res['reverse'] else 'first'} "
        f"{res['fit_scans']} "
        f"({res['tune']['seconds']:.0f} s incl. CMA-ES, {res['tuned_columns']} columns)"
    )
    head = (
        f"{'source':<20} {'range W1 m':>10} {'elev W1 deg':>11} {'beam ratio L1':>13} {'rough. |d| m':>12} "
        f"{'obj exp (|d|)':>14} {'obj n@10m (|log|)':>18} {'pts/frame':>9} {'gate acc':>8}"
    )
    terms = res["tune"].get("search", {}).get("terms")
    if terms:
        print(
            f"tuned search: drop_offset {terms['drop_offset']:.2f}, far_range50 {terms['far_range50']:.1f} m "
            f"(width {terms['far_width']:.1f}), drop runs {res['tune']['drop_run_columns']:.2f} columns "
            f"(0: per return; share per return {_shares(terms, res['tune']['classes_searched'])}), objective "
            f"{res['tune']['search']['objective_best']:.3f}"
        )
        best = res["tune"]["search"].get("distances_best", {})
        if "gate_shortfall" in best:
            print(
                f"tuned search gate term: shortfall {best['gate_shortfall']:.4f}, search frames accepted by the fit "
                f"bank {100 * best['gate_accepted']:.0f}%"
            )
    print(head)
    print("-" * len(head))
    for name, row in res["rows"].items():
        d = row["distances"]
        obj_exp = f"{_fmt(row['object_exponent'], 2)} ({_fmt(d['object_exponent'], 2)})"
        obj_n10 = f"{_fmt(row['object_n10'], 0)} ({_fmt(d['object_n10'], 2)})"
        print(
            f"{name:<20} {_fmt(d['range_w1']):>10} {_fmt(d['elevation_w1']):>11} {_fmt(d['beam_ratio_l1']):>13} "
            f"{_fmt(d['roughness'], 4):>12} {obj_exp:>14} {obj_n10:>18} {row['points_per_frame']:>9.0f} "
            f"{100 * row['gate_acceptance']:>7.0f}%"
        )
    ideal = res["rows"]["ideal"]["distances"]
    for name in ("tuned", "realistic"):
        if name not in res["rows"]:
            continue
        dist = res["rows"][name]["distances"]
        wins = [k for k in _STATS if dist[k] < ideal[k]]
        print(f"{name} closer to real than ideal on {len(wins)}/{len(_STATS)} statistics ({', '.join(wins)})")
    for name, b in res["object_bootstrap"].items():
        print(
            f"{name} closer than ideal in {100 * b['object_exponent']:.0f}% (exponent) and "
            f"{100 * b['object_n10']:.0f}% "
            f"(n10) of {500} bootstrap resamples of the frames (real exponent sd {b['real_exponent_sd']:.2f})"
        )
    print("frames failing each check (scene component beyond half its d_max, scene G, class), of", args.frames)
    for name, row in res["rows"].items():
        fails = ", ".join(f"{k} {v}" for k, v in row["failing"].items()) or "none"
        od = row["origin_distance_m"]
        mean_od = f"{sum(od) / len(od):.3f}" if od else "n/a"
        print(f"  {name:<20} origin distance to the real mean {mean_od} m; {fails}")
    tuned_row = res["rows"].get("tuned", {"rejections": []})
    reasons: dict[str, int] = {}
    for r in tuned_row["rejections"]:
        key = r.split(":")[0] + ": " + r.split("worst: ")[-1].split(" ")[0] if "worst: " in r else r
        reasons[key] = reasons.get(key, 0) + 1
    if reasons:
        top = ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:4])
        print(f"tuned rejections (reason: worst component x count): {top}")
    if args.explain is not None:
        from simgap_ext.gate import GateConfig

        threshold = GateConfig().scene_threshold
        for name in args.explain or ["tuned"]:
            row = res["rows"].get(name)
            if row is None:
                print(f"--explain: no row {name!r} (rows: {', '.join(res['rows'])})")
                continue
            print(f"rejected frames of {name}:")
            for i, pf in enumerate(row["per_frame"]):
                if pf["decision"]["accepted"]:
                    continue
                lines = explain(pf["decision"], threshold)
                print(f"  frame {i}: " + lines[0])
                for line in lines[1:]:
                    print(f"    {line}")
    print(f"total {res['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
