"""Exact Chamfer distance benchmark: SimGap's Warp kernels vs scipy cKDTree vs the seed's dense formula.

Usage::

    .venv/bin/python benchmarks/bench_chamfer.py [--sizes 2048 16384 131072] [--repeats 5] [--cloud lidar]

Every (method, size) runs in a fresh subprocess so that its peak memory can be measured on its own:

- time: median of ``--repeats`` calls after a warm-up call on the same clouds (Warp kernels are compiled and
  loaded from Warp's kernel cache during a separate tiny warm-up, so compilation is never timed);
- ``tracemalloc peak``: peak Python/NumPy heap during one call (NumPy paths; for ours this covers the host-side
  float64 copies and index arrays, not Warp's own allocations);
- ``RSS delta``: peak resident set size of the worker process (``ru_maxrss``) minus its RSS just before the
  measured calls: covers Warp's allocations (arrays, hash grid) and cKDTree's C++ tree too;
- ``warp bytes``: the Warp arrays and hash grids SimGap allocates, estimated from their sizes (Warp's CPU
  allocator is invisible to tracemalloc).

Clouds (same seed for every method): ``lidar`` = a synthetic 64-beam spinning-LiDAR scan (ground rings whose
spacing grows with range, plus walls at 60 m), ``uniform`` = uniform in a 50 x 50 x 5 m box. The dense
formula ``np.linalg.norm(a[:, None] - b[None], axis=-1)`` is skipped where its N x M float64 temporaries
would exceed ``--dense-limit-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np

METHODS = ("warp-cpu", "warp-cuda", "ckdtree-w1", "ckdtree-wall", "dense")


def make_cloud(kind: str, n: int, seed: int) -> np.ndarray:
    """(n, 3) float64 test cloud, deterministic in (kind, n, seed)."""
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((n, 3)) * [50.0, 50.0, 5.0]
    az = rng.uniform(0, 2 * np.pi, n)
    el = np.deg2rad(rng.choice(np.linspace(-25.0, 3.0, 64), n))
    h = 1.8
    rng_m = np.where(el < 0, h / np.tan(-np.minimum(el, -1e-3)), 60.0)
    rng_m = np.minimum(rng_m, 60.0) + rng.normal(0, 0.02, n)
    x = rng_m * np.cos(el) * np.cos(az)
    y = rng_m * np.cos(el) * np.sin(az)
    z = np.where(el < 0, -h, rng_m * np.sin(el)) + rng.normal(0, 0.02, n)
    return np.stack([x, y, z], axis=1)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _warp_bytes(n: int, m: int) -> int:
    """Estimated bytes of the Warp arrays and hash grids SimGap allocates for one Chamfer call."""
    per_cloud = 12 + 12 + 4  # raw vec3 copy, cell-sorted copy, permutation
    # hash grid: point ids + cells (8), radix-sort scratch (~16), <= 2 buckets per point x start/end (16)
    per_grid = 8 + 16 + 16
    per_query = 4 + 4 + 4 + 4  # best distance, best index, active ids, radius
    return (n + m) * (per_cloud + per_grid + per_query)


def worker(method: str, kind: str, n: int, repeats: int) -> dict:
    """Time one method on one size in this process; returns a JSON-able dict."""
    a = make_cloud(kind, n, 1)
    b = make_cloud(kind, n, 2)
    out: dict = {"method": method, "n": n}
    if method.startswith("warp"):
        from simgap_ext._warp import available_devices
        from simgap_ext.metrics import chamfer_distance

        dev = "cpu" if method == "warp-cpu" else "cuda:0"
        if dev not in available_devices():
            return {**out, "skipped": "no CUDA device"}
        chamfer_distance(a[:256], b[:256], device=dev)  # compile / load kernels: not timed

        def fn() -> float:
            return chamfer_distance(a, b, device=dev)

        out["warp_bytes"] = _warp_bytes(n, n)
    elif method.startswith("ckdtree"):
        from scipy.spatial import cKDTree

        workers = 1 if method == "ckdtree-w1" else -1

        def fn() -> float:
            d_ab, _ = cKDTree(b).query(a, workers=workers)
            d_ba, _ = cKDTree(a).query(b, workers=workers)
            return 0.5 * (d_ab.mean() + d_ba.mean())
    else:

        def fn() -> float:
            d = np.linalg.norm(a[:, None] - b[None], axis=-1)
            return 0.5 * (d.min(axis=1).mean() + d.min(axis=0).mean())

    rss0 = _rss_bytes()
    value = fn()  # warm-up (caches, first-touch allocations)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        **out,
        "median_s": statistics.median(times),
        "times_s": times,
        "value": float(value),
        "tracemalloc_peak": peak,
        "rss_delta": max(peak_rss - rss0, 0),
    }


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 16384, 131072])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cloud", choices=("lidar", "uniform"), default="lidar")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--dense-limit-gb", type=float, default=2.0)
    ap.add_argument("--json", default=None, help="write all results as JSON")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.cloud, int(args.worker[1]), args.repeats)))
        return 0
    rows = []
    for n in args.sizes:
        for method in args.methods:
            if method == "dense":
                need = n * n * 8 * 4  # (N, M, 3) difference + (N, M) norm, float64
                if need > args.dense_limit_gb * 2**30:
                    rows.append({"method": method, "n": n, "skipped": f"N x M = {need / 2**30:.1f} GB"})
                    continue
            cmd = [sys.executable, __file__, "--worker", method, str(n), "--repeats", str(args.repeats)]
            cmd += ["--cloud", args.cloud]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                rows.append({"method": method, "n": n, "skipped": f"failed: {res.stderr.strip().splitlines()[-1:]}"})
                continue
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"  done {method} n={n}", file=sys.stderr)
    base = {r["n"]: r["median_s"] for r in rows if r["method"] == "ckdtree-w1" and "median_s" in r}
    ref = {r["n"]: r["value"] for r in rows if r["method"] == "ckdtree-w1" and "value" in r}
    print(f"\nExact Chamfer, {args.cloud} clouds, N = M points per cloud, median of {args.repeats} (CPU cores: "
          f"{os.cpu_count()}, load avg {os.getloadavg()[0]:.1f})\n")  # fmt: skip
    hdr = (
        "N",
        "method",
        "median",
        "speed-up vs cKDTree w=1",
        "tracemalloc peak",
        "RSS delta",
        "warp bytes",
        "|CD - ref|",
    )
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in rows:
        if "skipped" in r:
            print(f"| {r['n']} | {r['method']} | skipped ({r['skipped']}) | | | | | |")
            continue
        ratio = base.get(r["n"], float("nan")) / r["median_s"]
        err = abs(r["value"] - ref[r["n"]]) if r["n"] in ref else float("nan")
        print(
            f"| {r['n']} | {r['method']} | {r['median_s'] * 1e3:.1f} ms | {ratio:.2f}x | "
            f"{_mb(r['tracemalloc_peak'])} | {_mb(r['rss_delta'])} | {_mb(r.get('warp_bytes'))} | {err:.1e} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cloud": args.cloud, "repeats": args.repeats, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
