"""Active-learning benchmark: entropy, BALD and region (voxel) selection vs random selection.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_active_learning.py --data world [--seeds 0 1] [--size small]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_active_learning.py --data nuscenes --seeds 0 1

Data:

- ``world``: the embedded world (``simgap render``, realistic preset, hdl-32): seed labelled scans, an unlabelled
  pool and held-out scans from disjoint scene seeds.
- ``nuscenes``: the 40 consecutive nuScenes-lidarseg keyframes of ``../shared/realdata/nuscenes_lidarseg_cascol``
  (HDL-32E, the 16 lidarseg challenge classes): keyframes 0-1 labelled, 2-29 the pool, 30-39 held out (a
  different stretch of the drive).

Every strategy runs the same loop (:func:`simgap_ext.active.run_active_learning`, simulated oracle, same seeds,
same per-round label cost: ``--count`` scans, or the same number of points as voxel regions) and records the
held-out mIoU after each round. Reported per strategy (mean +- sd over seeds): the final mIoU, the labelled
points when it first reaches random selection's final mIoU, and the share of random's labels that saves (no
value: it never reached it within the budget). Writes ``OUT/results.json`` and ``OUT/curves.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {
    # labelled seed, pool, held-out scans; rounds, scans per round, epochs, MC passes, range-image width
    "tiny": dict(
        sensor="vlp-16", seed_scans=1, pool=2, heldout=1, rounds=1, count=1, epochs=1, min_steps=0, passes=2, width=64
    ),
    "small": dict(
        sensor="hdl-32",
        seed_scans=2,
        pool=10,
        heldout=3,
        rounds=2,
        count=2,
        epochs=3,
        min_steps=30,
        passes=4,
        width=256,
    ),
    "medium": dict(
        sensor="hdl-32",
        seed_scans=2,
        pool=40,
        heldout=10,
        rounds=5,
        count=3,
        epochs=6,
        min_steps=100,
        passes=10,
        width=256,
    ),
}
STRATEGIES = {
    "random": dict(heuristic="random", regions="scan"),
    "entropy": dict(heuristic="entropy", regions="scan"),
    "bald": dict(heuristic="bald", regions="scan"),
    "entropy-voxel": dict(heuristic="entropy", regions="voxel"),
}

# nuScenes-lidarseg raw id -> lidarseg challenge class (the 16 evaluated classes; others are ignored).
NUSCENES_CLASSES = {
    9: "barrier", 14: "bicycle", 15: "bus", 16: "bus", 17: "car", 18: "construction_vehicle", 21: "motorcycle",
    2: "pedestrian", 3: "pedestrian", 4: "pedestrian", 6: "pedestrian", 12: "traffic_cone", 22: "trailer",
    23: "truck", 24: "driveable_surface", 25: "other_flat", 26: "sidewalk", 27: "terrain", 28: "manmade",
    30: "vegetation",
}  # fmt: skip


def _render(out: Path, frames: int, seed: int, sensor: str) -> Path:
    from simgap_ext.cli import main

    if not (out / "render.json").is_file():
        rc = main(["render", "--sensor", sensor, "--preset", "realistic", "--frames", str(frames), "--seed",
                   str(seed), "--out", str(out), "--no-progress"])  # fmt: skip
        if rc:
            raise SystemExit(f"render failed ({rc})")
    return out


def world_data(work: Path, size: dict) -> tuple[list, list, list, str]:
    from simgap_ext.active.dataset import load_samples

    sensor = size["sensor"]
    lab = load_samples(_render(work / "labelled", size["seed_scans"], 1000, sensor))
    pool = load_samples(_render(work / "pool", size["pool"], 2000, sensor))
    held = load_samples(_render(work / "heldout", size["heldout"], 3000, sensor))
    return lab, pool, held, sensor


def nuscenes_data(work: Path, size: dict, src: Path) -> tuple[list, list, list, str]:
    """Convert the raw keyframes to a SemanticKITTI folder (16 challenge classes) and split them."""
    from simgap_ext.active.dataset import load_samples
    from simgap_ext.data.label_map import write_label_map
    from simgap_ext.data.semantickitti import pack_labels, write_bin

    names = sorted(set(NUSCENES_CLASSES.values()))
    new_id = {raw: names.index(n) + 1 for raw, n in NUSCENES_CLASSES.items()}
    seq = work / "nuscenes"
    (seq / "velodyne").mkdir(parents=True, exist_ok=True)
    (seq / "labels").mkdir(exist_ok=True)
    frames = sorted((p for p in src.iterdir() if p.name.startswith("data")), key=lambda p: int(p.name[4:]))
    if len(frames) < 12:
        raise SystemExit(f"{src}: only {len(frames)} keyframes")
    for i, f in enumerate(frames):
        a = np.fromfile(f / "points.bin", dtype=np.float32).reshape(-1, 5)
        raw = np.fromfile(f / "ground.bin", dtype=np.uint8)
        sem = np.array([new_id.get(int(r), 0) for r in range(256)], dtype=np.uint32)[raw]
        write_bin(seq / "velodyne" / f"{i:06d}.bin", a[:, :3], a[:, 3] / 255.0)
        pack_labels(sem, np.zeros_like(sem)).tofile(seq / "labels" / f"{i:06d}.label")
    write_label_map(seq / "label_map.yaml", {0: "unlabeled", **{k + 1: n for k, n in enumerate(names)}})
    samples = load_samples(seq)
    n = len(samples)
    n_held = max(2, n // 4)
    held = samples[n - n_held :]
    lab = samples[: size["seed_scans"]]
    pool = samples[size["seed_scans"] : n - n_held][: size["pool"]]
    return lab, pool, held, "hdl-32"


def run_one(strategy: str, seed: int, data: tuple, size: dict, out: Path) -> list[dict]:
    from simgap_ext.active.loop import ActiveLearningConfig, run_active_learning
    from simgap_ext.active.training import TrainConfig

    lab, pool, held, sensor = data
    pool_points = sum(np.fromfile(s.path, dtype=np.float32).size // 4 for s in pool)
    per_scan = pool_points / len(pool)
    budget = size["rounds"] * size["count"]
    cfg = ActiveLearningConfig(
        rounds=size["rounds"], budget=budget, count=size["count"], passes=size["passes"], sensor=sensor,
        width=size["width"], seed=seed, voxel_size=10.0, budget_points=int(budget * per_scan),
        train=TrainConfig(epochs=size["epochs"], min_steps=size["min_steps"], seed=seed), **STRATEGIES[strategy],
    )  # fmt: skip
    res = run_active_learning(pool, lab, held, out / f"{strategy}_s{seed}", cfg, cache=_CACHE)
    return res.history


_CACHE = None


def _reach(curve: list[dict], target: float) -> int | None:
    for h in curve:
        if h["miou"] is not None and h["miou"] >= target - 1e-9:
            return h["labelled_points"]
    return None


def _fmt(vals: list[float], pct: bool = False) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "never"
    m = statistics.mean(vals)
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{100 * m:.0f} +- {100 * sd:.0f} %" if pct else f"{m:.3f} +- {sd:.3f}"


def _default_realdata() -> Path:
    # ../shared/realdata beside the main checkout; a git worktree sits one level deeper.
    for cand in (ROOT.parent / "shared" / "realdata", ROOT.parent.parent / "shared" / "realdata"):
        if cand.is_dir():
            return cand
    return ROOT.parent / "shared" / "realdata"


def main(argv: list[str] | None = None) -> int:
    global _CACHE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=("world", "nuscenes"), default="world")
    ap.add_argument("--size", choices=tuple(SIZES), default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=tuple(STRATEGIES))
    ap.add_argument("--realdata", type=Path, default=_default_realdata())
    ap.add_argument("--out", type=Path, default=Path("bench_al_out"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    from simgap_ext.active.dataset import ScanCache
    from simgap_ext.active.training import set_torch_threads

    threads = set_torch_threads(args.threads)
    size = SIZES[args.size]
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / f"data_{args.data}_{args.size}"
    if args.data == "world":
        data = world_data(work, size)
    else:
        src = args.realdata / "nuscenes_lidarseg_cascol"
        if not src.is_dir():
            print(f"skipped: {src} not found")
            return 0
        data = nuscenes_data(work, size, src)
    _CACHE = ScanCache()
    print(f"data={args.data} size={args.size} labelled={len(data[0])} pool={len(data[1])} heldout={len(data[2])} "
          f"seeds={args.seeds} threads={threads}")  # fmt: skip
    curves: dict[str, list[list[dict]]] = {}
    t0 = time.time()
    for strategy in args.strategies:
        for seed in args.seeds:
            t = time.time()
            runs = args.out / f"runs_{args.data}_{args.size}"
            if (runs / f"{strategy}_s{seed}").exists():
                import shutil

                shutil.rmtree(runs / f"{strategy}_s{seed}")
            curves.setdefault(strategy, []).append(run_one(strategy, seed, data, size, runs))
            final = curves[strategy][-1][-1]
            print(f"  {strategy:14s} seed {seed}: final mIoU {final['miou']:.3f} with {final['labelled_points']} "
                  f"labelled points ({time.time() - t:.0f} s)", flush=True)  # fmt: skip
    rows = []
    rand = curves.get("random")
    for strategy, runs in curves.items():
        finals = [r[-1]["miou"] for r in runs]
        reach, saved = [], []
        for i, r in enumerate(runs):
            if rand is None:
                continue
            target = rand[i][-1]["miou"]
            full = rand[i][-1]["labelled_points"]
            pts = _reach(r, target)
            reach.append(pts)
            saved.append(None if pts is None else 1.0 - pts / full)
        got = [p for p in reach if p is not None]
        rows.append((strategy, _fmt(finals), f"{statistics.mean(got):.0f}" if got else "never",
                     _fmt(saved, pct=True), f"{len(got)}/{len(reach)}"))  # fmt: skip
    print("\n| strategy | final mIoU (mean +- sd) | labelled points to reach random's final mIoU | labels saved "
          "vs random | runs that reach it |\n|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\ntotal {time.time() - t0:.0f} s")
    (args.out / f"results_{args.data}_{args.size}.json").write_text(json.dumps({"size": size, "curves": curves}))
    _plot(curves, args.out / f"curves_{args.data}_{args.size}.png", f"{args.data} ({args.size})")
    return 0


def _plot(curves: dict, path: Path, title: str) -> None:
    from simgap_ext.plots import use_agg

    use_agg()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, runs in curves.items():
        xs = np.array([[h["labelled_points"] for h in r] for r in runs], dtype=float)
        ys = np.array([[np.nan if h["miou"] is None else h["miou"] for h in r] for r in runs], dtype=float)
        n = min(len(x) for x in xs)
        x, y = xs[:, :n].mean(0), ys[:, :n]
        ax.plot(x, np.nanmean(y, 0), marker="o", label=strategy)
        if y.shape[0] > 1:
            ax.fill_between(x, np.nanmin(y, 0), np.nanmax(y, 0), alpha=0.15)
    ax.set_xlabel("labelled points (oracle)")
    ax.set_ylabel("held-out mIoU")
    ax.set_title(f"active learning: {title}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
