"""Where the range distribution of ``bench_fidelity``'s rendered frames departs from the real held-out scans.

``bench_fidelity``'s ``range W1`` is the 1-D Wasserstein-1 between the pooled return ranges of a row's frames and of
the held-out real keyframes (20-39). This script renders ``bench_fidelity``'s frames (its world,
:func:`bench_fidelity.bench_world`, and scene seeds ``SCENE_SEED + i``; ``--scene-seed`` another set
of scenes) and breaks each set's ranges down:

- per set: points per frame, range quantiles, the share of returns per range band, the W1 to the held-out and to the
  fit keyframes (0-19), and the W1 to the held-out scans split by range band (``W1 = integral |F_set - F_real| dr``:
  the integral over each band; their sum is the W1) with the signed mean difference (positive: the set's returns
  lie farther than real on average);
- per set and class (head classes, real labels rolled up): the class's share of returns and its share beyond 40 and
  60 m;
- ablations of the tuned model on the same scenes (``far_range50 = 0``: no far-range loss; ``drop_offset = 0``: no
  searched drop shift; both), to say which searched term moves the W1;
- with ``--blocks B``: every benchmark-world set's W1 per block of ``--frames / B`` consecutive scene seeds (block 0
  is ``bench_fidelity``'s own scenes at the default ``--scene-seed``): how much of a row's W1 is the scene sample;
  ``--also LABEL=TOML`` adds rows of other tuned profiles (e.g. a ``--far-bound`` tune);
- the *search's* clean scenes (``simgap tune`` renders ``--synthetic-frames`` frames of the default street world
  at scene seeds ``S .. S + 7`` for search seed ``S``) clean and post-processed with the tuned model as the search
  does (:func:`~simgap_ext.tune.apply.apply_sensor_effects` with seed ``S + i``) and without the far loss, next to
  the same default world at the benchmark's scene seeds (and, with ``--world-frames N``, at scene seeds 0 .. N-1):
  what the search's objective sees against the fit keyframes.

``tuned`` is the ``tuned`` preset of ``--profile`` (a ``simgap tune`` output, e.g. ``bench_fidelity.py
--save-tuned``), by default the shipped ``hdl-32-nuscenes`` profile's ``realistic`` preset (the default tune at
search seed 0 on keyframes 0-19).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/range_breakdown.py [--frames 20] [--profile TUNED.toml]
        [--search-seeds 0,100,200] [--search-frames 8] [--world-frames N] [--scene-seed 1000] [--blocks B]
        [--also LABEL=TOML ...] [--no-ablations] [--device cpu] [--real DIR] [--fit 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)
from bench_fidelity import SCENE_SEED, bench_world

__all__ = ["main", "breakdown", "band_w1"]

_DEFAULT_REAL = realdata_root() / NUSCENES
# Range bands (metres) and the classes broken out; any other labelled class counts as "other".
BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, 70.0), (70.0, np.inf))
CLASSES = ("ground", "building", "vegetation", "vehicle")
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _band_name(lo: float, hi: float) -> str:
    return f"{lo:.0f}-{hi:.0f}" if np.isfinite(hi) else f">{lo:.0f}"


def band_w1(a: np.ndarray, b: np.ndarray, bands: tuple[tuple[float, float], ...] = BANDS) -> np.ndarray:
    """The 1-D W1 between samples ``a`` and ``b`` split by band: ``integral over the band of |F_a(r) - F_b(r)| dr``.

    Exact on the empirical CDFs (piecewise constant between the pooled sorted samples); the bands' parts sum to
    ``scipy.stats.wasserstein_distance(a, b)`` when they cover the samples.

    Args:
        a: (N,) float samples. b: (M,) float samples.
        bands: (lo, hi) intervals.

    Returns:
        (len(bands),) float64 W1 parts.
    """
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if a.size == 0 or b.size == 0:
        raise ValueError(f"band_w1 needs samples on both sides, got {a.size} and {b.size}")
    x = np.concatenate([a, b])
    x.sort()
    lo_x, hi_x = x[:-1], x[1:]
    diff = np.abs(np.searchsorted(a, lo_x, "right") / a.size - np.searchsorted(b, lo_x, "right") / b.size)
    out = np.zeros(len(bands))
    for k, (lo, hi) in enumerate(bands):
        width = np.clip(np.minimum(hi_x, hi) - np.maximum(lo_x, lo), 0.0, None)
        out[k] = float((diff * width).sum())
    return out


def _ranges(frames: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Pooled ranges, head classes and frame indices of ``frames``, and the frame count: ``{"r", "cls", "frame",
    "n"}``."""
    from simgap_ext.tune.far import ranges_and_classes

    rs, cs = zip(*(ranges_and_classes(f) for f in frames), strict=True)
    cls = np.concatenate(cs).astype(str)
    cls = np.where(np.isin(cls, CLASSES), cls, "other")
    frame = np.repeat(np.arange(len(rs)), [r.size for r in rs])
    return {"r": np.concatenate(rs), "cls": cls, "frame": frame, "n": np.array(len(frames))}


def breakdown(
    real_dir: Path,
    *,
    n_fit: int,
    frames: int,
    device: str | None,
    profile: Path | None = None,
    search_seeds: tuple[int, ...] = (0,),
    search_frames: int = 8,
    ablations: bool = True,
    world_frames: int = 0,
    scene_seed: int = SCENE_SEED,
    also: dict[str, Path] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Render and read every set's ranges (see the module docstring); returns ``{set label: _ranges(...)}``."""
    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.sensors import EffectSettings, ReadOnlyMapping, load_sensor_profile
    from simgap_ext.tune.apply import apply_sensor_effects
    from simgap_ext.tune.profile import load_real_scans

    base = load_sensor_profile("hdl-32")
    if profile is None:
        tuned, preset = load_sensor_profile("hdl-32-nuscenes"), "realistic"
    else:
        tuned, preset = load_sensor_profile(str(profile)), "tuned"
    model = tuned.preset(preset).model
    _, real_frames = load_real_scans(real_dir, base)
    out: dict[str, dict[str, np.ndarray]] = {
        f"real held-out ({n_fit}-{len(real_frames) - 1})": _ranges([roll_up_frame(f) for f in real_frames[n_fit:]]),
        f"real fit (0-{n_fit - 1})": _ranges([roll_up_frame(f) for f in real_frames[:n_fit]]),
    }

    def with_model(m: Any) -> Any:
        return replace(tuned, presets=ReadOnlyMapping({**tuned.presets, preset: EffectSettings(model=m)}))

    def render(label: str, src: Any, seeds: range) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        frs = [src.render(seed=s, frame_id=i) for i, s in enumerate(seeds)]
        print(f"  {label}: {len(frs)} frames, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return frs

    bench_seeds = range(scene_seed, scene_seed + frames)
    sources: dict[str, Any] = {
        "ideal": WarpLidarSource("hdl-32", "ideal", device=device, rotation_rate_hz=20.0, randomizer=bench_world(base)),
        "tuned": WarpLidarSource(tuned, preset, device=device, randomizer=bench_world(tuned)),
    }
    no_far = model.replace(far_range50=0.0)  # the ablation on the benchmark's scenes and on the search's alike
    if ablations:
        for label, m in (
            ("tuned, no far loss", no_far),
            ("tuned, no drop shift", model.replace(drop_offset=0.0)),
            ("tuned, neither", model.replace(far_range50=0.0, drop_offset=0.0)),
        ):
            p = with_model(m)
            sources[label] = WarpLidarSource(p, preset, device=device, randomizer=bench_world(p))
    for label, path in (also or {}).items():
        p = load_sensor_profile(str(path))
        sources[label] = WarpLidarSource(p, "tuned", device=device, randomizer=bench_world(p))
    # the search renders the tuned profile's beam table with the `ideal` preset in the default street world
    sources["clean, bench world"] = WarpLidarSource(tuned, "ideal", device=device, randomizer=bench_world(tuned))
    sources["clean, default world"] = WarpLidarSource(tuned, "ideal", device=device)
    for label, src in sources.items():
        out[label] = _ranges(render(label, src, bench_seeds))
    search_src = WarpLidarSource(tuned, "ideal", device=device)
    for s in search_seeds:
        seeds = range(s, s + search_frames)
        clean = render(f"search seeds {s}-{s + search_frames - 1}", search_src, seeds)
        out[f"search {s}-{s + search_frames - 1} clean"] = _ranges(clean)
        post = [apply_sensor_effects(f, model, s + i) for i, f in enumerate(clean)]
        out[f"search {s}-{s + search_frames - 1} tuned"] = _ranges(post)
        if ablations:
            post = [apply_sensor_effects(f, no_far, s + i) for i, f in enumerate(clean)]
            out[f"search {s}-{s + search_frames - 1} no far loss"] = _ranges(post)
    if world_frames:
        # the default world's own far tail, on more scenes than one search renders
        out[f"clean, default world 0-{world_frames - 1}"] = _ranges(render("world", search_src, range(world_frames)))
    return out


def _print_blocks(res: dict[str, dict[str, np.ndarray]], frames: int, blocks: int) -> None:
    """Range W1 to the held-out scans of every benchmark-world set, per block of consecutive scene seeds."""
    held = res[next(iter(res))]["r"]
    size = frames // blocks
    print(f"range W1 to the held-out scans (m) per block of {size} consecutive scene seeds, and pooled")
    head = f"{'set':<28}" + "".join(f" {'block ' + str(k):>8}" for k in range(blocks)) + f" {'pooled':>8}"
    print(head)
    print("-" * len(head))
    for label, s in list(res.items())[2:]:
        if int(s["n"]) != frames or label.startswith("search"):
            continue
        w = [band_w1(s["r"][s["frame"] // size == k], held).sum() for k in range(blocks)]
        print(f"{label:<28}" + "".join(f" {v:8.3f}" for v in w) + f" {band_w1(s['r'], held).sum():8.3f}")
    print()


def _print(res: dict[str, dict[str, np.ndarray]]) -> None:
    labels = list(res)
    held, fit = res[labels[0]], res[labels[1]]
    bands = [_band_name(lo, hi) for lo, hi in BANDS]
    print("range W1 to the held-out scans (m), split by band (integral of |F_set - F_real| over the band)")
    head = f"{'set':<28} {'pts/frame':>9} {'W1 held':>8} {'W1 fit':>7} {'mean-real':>9} | " + " ".join(
        f"{b + ' m':>8}" for b in bands
    )
    print(head)
    print("-" * len(head))
    for label, s in res.items():
        parts = band_w1(s["r"], held["r"])
        w_fit = float(band_w1(s["r"], fit["r"]).sum())
        print(
            f"{label:<28} {s['r'].size / int(s['n']):9.0f} {parts.sum():8.3f} {w_fit:7.3f} "
            f"{s['r'].mean() - held['r'].mean():+9.3f} | " + " ".join(f"{p:8.3f}" for p in parts)
        )
    print()
    print("range quantiles (m) and share of returns per band (%)")
    head = (
        f"{'set':<28} "
        + " ".join(f"{'q' + format(100 * q, 'g'):>6}" for q in QUANTILES)
        + " | "
        + " ".join(f"{b + ' m':>8}" for b in bands)
    )
    print(head)
    print("-" * len(head))
    for label, s in res.items():
        q = np.quantile(s["r"], QUANTILES)
        share = [100.0 * float(((s["r"] >= lo) & (s["r"] < hi)).mean()) for lo, hi in BANDS]
        print(f"{label:<28} " + " ".join(f"{v:6.1f}" for v in q) + " | " + " ".join(f"{v:8.2f}" for v in share))
    print()
    print("per class: share of returns %, returns per frame, % of the class beyond 40 m / beyond 60 m")
    head = f"{'set':<28}" + "".join(f" {c:>25}" for c in (*CLASSES, "other"))
    print(head)
    print("-" * len(head))
    for label, s in res.items():
        cells = []
        for c in (*CLASSES, "other"):
            m = s["cls"] == c
            rc = s["r"][m]
            far = (100.0 * float((rc > 40).mean()), 100.0 * float((rc > 60).mean())) if rc.size else (np.nan,) * 2
            cells.append(f"{100 * m.mean():5.1f} {m.sum() / int(s['n']):6.0f} {far[0]:5.1f}/{far[1]:4.2f}")
        print(f"{label:<28}" + "".join(f" {c:>25}" for c in cells))
    print()
    print("per class: returns per frame per band (rendered vs real held-out)")
    head = f"{'set':<28} {'class':<11}" + " ".join(f"{b + ' m':>8}" for b in bands)
    print(head)
    print("-" * len(head))
    for label, s in res.items():
        for c in (*CLASSES, "other"):
            rc = s["r"][s["cls"] == c]
            n = [float(((rc >= lo) & (rc < hi)).sum()) / int(s["n"]) for lo, hi in BANDS]
            print(f"{label:<28} {c:<11}" + " ".join(f"{v:8.0f}" for v in n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="fit keyframes; the rest are held out (default 20)")
    parser.add_argument("--frames", type=int, default=20, help="rendered frames per set (default 20)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument(
        "--profile", type=Path, default=None, help="tuned profile TOML (default: the shipped hdl-32-nuscenes)"
    )
    parser.add_argument(
        "--search-seeds", default="0", help="comma-separated search seeds whose search scenes to read (default 0)"
    )
    parser.add_argument("--search-frames", type=int, default=8, help="search scenes per seed (default 8, as tune)")
    parser.add_argument("--no-ablations", action="store_true", help="skip the tuned model's ablations")
    parser.add_argument(
        "--blocks",
        type=int,
        default=1,
        help="also print the W1 of every benchmark-world set per block of --frames / B consecutive scene seeds",
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="LABEL=TOML",
        help="another tuned profile (its tuned preset) rendered in the benchmark world as row LABEL (repeatable)",
    )
    parser.add_argument(
        "--scene-seed",
        type=int,
        default=SCENE_SEED,
        help=f"first scene seed of the benchmark-world sets (default {SCENE_SEED}, bench_fidelity's)",
    )
    parser.add_argument(
        "--world-frames",
        type=int,
        default=0,
        help="also render the default world clean at scene seeds 0 .. N-1 (its far tail on many scenes; default 0)",
    )
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        parser.error(f"real scans not found: {args.real}")
    if args.profile is not None and not args.profile.is_file():
        parser.error(f"--profile: {args.profile} not found")
    try:
        seeds = tuple(int(s) for s in args.search_seeds.split(",") if s.strip())
    except ValueError:
        parser.error(f"--search-seeds: integers separated by commas, got {args.search_seeds!r}")
    if args.frames < 1 or args.search_frames < 1 or args.world_frames < 0:
        parser.error("--frames and --search-frames must be >= 1, --world-frames >= 0")
    if args.blocks < 1 or args.frames % args.blocks:
        parser.error(f"--blocks must be >= 1 and divide --frames ({args.frames}), got {args.blocks}")
    also = {}
    for item in args.also:
        label, sep, path = item.partition("=")
        if not sep or not label or not Path(path).is_file():
            parser.error(f"--also: LABEL=TOML with an existing file, got {item!r}")
        also[label] = Path(path)
    t0 = time.perf_counter()
    res = breakdown(
        args.real,
        n_fit=args.fit,
        frames=args.frames,
        device=args.device,
        profile=args.profile,
        search_seeds=seeds,
        search_frames=args.search_frames,
        ablations=not args.no_ablations,
        world_frames=args.world_frames,
        scene_seed=args.scene_seed,
        also=also,
    )
    if args.blocks > 1:
        _print_blocks(res, args.frames, args.blocks)
    _print(res)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
