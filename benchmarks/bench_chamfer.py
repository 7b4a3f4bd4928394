"""Exact Chamfer distance on real LiDAR pairs and uniform clouds: SimGap against the KD-tree libraries.

Usage::

    python benchmarks/bench_chamfer.py                                   # every pair, N = 2k ... 1M
    python benchmarks/bench_chamfer.py --pairs consecutive --sizes 16384 full --rounds 5

Pairs (``../shared/realdata``, resolved from this file; ``--realdata`` to point elsewhere):

- ``consecutive``: KITTI-360 drive 0009, scans 2000 and 2020 (HDL-64E, 2 s apart); 1M points = nine scans stacked
  per side (even vs odd frames of the 18);
- ``drives``: KITTI-360 scan 2000 against SemanticKITTI ``spvnas/000000`` (another drive, same sensor model);
- ``render``: KITTI-360 scan 2000 against an ``hdl-64`` ``realistic`` render of SimGap's embedded Warp backend;
- ``uniform``: uniform in a 50 x 50 x 5 m box (seeded).

``N`` subsamples each side to N points (seeded, without replacement; stacked scans beyond one scan); ``full`` keeps
the scans as they are.

Contenders, all computing the mean-reduced Chamfer ``0.5 (mean_a d + mean_b d)`` from NumPy float64 clouds:
``simgap`` (``chamfer_distance(device="cpu")``, validation included), ``simgap-grid`` (the same with
``SIMGAP_NN_BACKEND=warp``: the Warp CPU hash grid that was the CPU path before), ``pykdtree``, ``ckdtree``
(scipy defaults, ``workers=-1``), ``ckdtree-unbal`` (``balanced_tree=False, compact_nodes=False``,
``workers=-1``), ``open3d`` (``PointCloud.compute_point_cloud_distance`` both ways, conversion included), when
installed. With ``--contenders simgap-cuda torch-cuda ... --ours simgap-cuda`` (a machine with a GPU): SimGap's
``chamfer_distance(device="cuda:0")`` against a chunked brute-force ``torch.cdist`` on the GPU (its matrix-product
form: fast, float32 cancellation makes it approximate, so the table's last column shows its error), host-to-device
copies included in both.

Timing: one process per (pair, N) with every contender; after a warm-up call each, ``--rounds`` rounds run every
contender once in a freshly shuffled order, so background load (the machine is shared) hits all contenders alike;
the table gives the median time and the median over rounds of the per-round ratio simgap / peer (< 1: simgap
faster). Memory: one fresh process per (pair, N, contender) that loads the clouds, makes one call on 64 points
(imports, Warp start-up), reads its RSS, makes one full call and reports peak RSS (``ru_maxrss``) minus that
baseline: it covers native allocations (trees, Warp arrays) that tracemalloc cannot see.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

CPU_CONTENDERS = ("simgap", "simgap-grid", "pykdtree", "ckdtree", "ckdtree-unbal", "open3d")
# On a machine with a GPU: SimGap's Warp hash grid on CUDA, and the strongest exact-enough GPU alternative that
# installs everywhere, a chunked brute-force torch.cdist (O(N x chunk) memory, N x M work).
CUDA_CONTENDERS = ("simgap-cuda", "torch-cuda")
CONTENDERS = CPU_CONTENDERS + CUDA_CONTENDERS
PAIRS = ("consecutive", "drives", "render", "uniform")
ONE_M = 1 << 20
_REPO = Path(__file__).resolve().parents[1]
# ../shared/realdata from the main checkout; ../../shared/realdata from a worktree under wt/
_REALDATA = next(
    (p for p in (_REPO.parent / "shared", _REPO.parents[1] / "shared") if p.is_dir()), _REPO.parent / "shared"
)
_REALDATA = _REALDATA / "realdata"


def _kitti_bin(path: Path) -> np.ndarray:
    return np.fromfile(path, np.float32).reshape(-1, 4)[:, :3].astype(np.float64)


def _kitti360_frames(root: Path) -> list[Path]:
    frames = sorted((root / "kitti360_osm_bki" / "velodyne_points" / "data").glob("*.bin"))
    if len(frames) < 2:
        raise SystemExit(f"bench_chamfer: no KITTI-360 scans under {root} (pass --realdata)")
    return frames


def _subsample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if n >= points.shape[0]:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(points.shape[0], n, replace=False))]


def load_pair(pair: str, size: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3), (M, 3) float64 clouds of one benchmark case, deterministic in (pair, size)."""
    n = None if size == "full" else int(size)
    if pair == "uniform":
        rng = np.random.default_rng(1)
        m = n or 131072
        return rng.random((m, 3)) * [50.0, 50.0, 5.0], rng.random((m, 3)) * [50.0, 50.0, 5.0]
    frames = _kitti360_frames(root)
    if pair == "consecutive":
        if n is not None and n > 120_000:  # more than one scan: stack even frames against odd frames
            a = np.vstack([_kitti_bin(f) for f in frames[0::2]])
            b = np.vstack([_kitti_bin(f) for f in frames[1::2]])
        else:
            a, b = _kitti_bin(frames[0]), _kitti_bin(frames[1])
    elif pair == "drives":
        a, b = _kitti_bin(frames[0]), _kitti_bin(root / "spvnas" / "000000.bin")
    elif pair == "render":
        from simgap_ext.backends.warp import WarpLidarSource

        a = _kitti_bin(frames[0])
        b = WarpLidarSource("hdl-64", "realistic", device="cpu").render(seed=0)["data"].astype(np.float64)
    else:
        raise SystemExit(f"bench_chamfer: unknown pair {pair!r}")
    if n is not None:
        a, b = _subsample(a, n, 1), _subsample(b, n, 2)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def make_contender(name: str, a: np.ndarray, b: np.ndarray) -> Callable[[], float] | None:
    """A zero-argument callable computing the Chamfer distance of (a, b); ``None`` when not installed."""
    if name in ("simgap", "simgap-grid"):
        from simgap_ext.metrics import chamfer_distance

        backend = "warp" if name == "simgap-grid" else "auto"

        def run() -> float:
            os.environ["SIMGAP_NN_BACKEND"] = backend
            try:
                return chamfer_distance(a, b, device="cpu")
            finally:
                os.environ.pop("SIMGAP_NN_BACKEND", None)

        return run
    if name == "simgap-cuda":
        from simgap_ext.metrics import chamfer_distance

        return lambda: chamfer_distance(a, b, device="cuda:0")
    if name == "torch-cuda":
        try:
            import torch
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None

        def nn_dist(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            # ~1 GiB of float32 distances per chunk: N x M in pieces, never the whole matrix at once
            chunk = max(1, (1 << 28) // r.shape[0])
            return torch.cat([torch.cdist(q[s : s + chunk], r).amin(1) for s in range(0, q.shape[0], chunk)])

        def run() -> float:
            ta = torch.from_numpy(a).to("cuda", torch.float32)
            tb = torch.from_numpy(b).to("cuda", torch.float32)
            return 0.5 * (nn_dist(ta, tb).double().mean().item() + nn_dist(tb, ta).double().mean().item())

        return run
    if name == "pykdtree":
        from pykdtree.kdtree import KDTree

        def run() -> float:
            d_ab, _ = KDTree(b).query(a)
            d_ba, _ = KDTree(a).query(b)
            return 0.5 * (d_ab.mean() + d_ba.mean())

        return run
    if name.startswith("ckdtree"):
        from scipy.spatial import cKDTree

        kw = {"balanced_tree": False, "compact_nodes": False} if name == "ckdtree-unbal" else {}

        def run() -> float:
            d_ab, _ = cKDTree(b, **kw).query(a, workers=-1)
            d_ba, _ = cKDTree(a, **kw).query(b, workers=-1)
            return 0.5 * (d_ab.mean() + d_ba.mean())

        return run
    if name == "open3d":
        try:
            import open3d as o3d
        except ImportError:
            return None

        def run() -> float:
            pa = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(a))
            pb = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(b))
            d_ab = np.asarray(pa.compute_point_cloud_distance(pb))
            d_ba = np.asarray(pb.compute_point_cloud_distance(pa))
            return 0.5 * (d_ab.mean() + d_ba.mean())

        return run
    raise ValueError(name)


def time_worker(pair: str, size: str, contenders: list[str], rounds: int, root: Path) -> dict:
    """Shuffled interleaved rounds of every contender on one case."""
    a, b = load_pair(pair, size, root)
    fns = {c: f for c in contenders if (f := make_contender(c, a, b)) is not None}
    values = {c: float(f()) for c, f in fns.items()}  # warm-up: imports, Warp kernels, first-touch pages
    times: dict[str, list[float]] = {c: [] for c in fns}
    rng = random.Random(7)
    order = list(fns)
    for _ in range(rounds):
        rng.shuffle(order)
        for c in order:
            t0 = time.perf_counter()
            fns[c]()
            times[c].append(time.perf_counter() - t0)
    return {"pair": pair, "size": size, "n": [a.shape[0], b.shape[0]], "times": times, "values": values}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mem_worker(pair: str, size: str, contender: str, root: Path) -> dict:
    """Peak RSS growth of one call in this fresh process."""
    a, b = load_pair(pair, size, root)
    fn = make_contender(contender, a, b)
    if fn is None:
        return {"skipped": "not installed"}
    # imports, Warp start-up and loading the Numba kernels are not part of a call (40k points: SimGap's own tree, when
    # the case is that large)
    make_contender(contender, a[:40960].copy(), b[:40960].copy())()
    if contender.endswith("-cuda"):  # device memory: the high-water mark of the framework's pool during one call
        if contender == "torch-cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            return {"rss_delta": torch.cuda.max_memory_allocated() - base, "gpu": True}
        from simgap_ext._warp import get_warp

        wp = get_warp()
        base = wp.get_mempool_used_mem_current("cuda:0")
        fn()
        return {"rss_delta": wp.get_mempool_used_mem_high("cuda:0") - base, "gpu": True}
    rss0 = _rss_bytes()
    fn()
    return {"rss_delta": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0, 0)}


def _sub(args: list[str]) -> dict:
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", choices=PAIRS, default=list(PAIRS))
    ap.add_argument("--sizes", nargs="+", default=["2048", "16384", "65536", "full", str(ONE_M)])
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CPU_CONTENDERS))
    ap.add_argument("--ours", choices=("simgap", "simgap-cuda"), default="simgap", help="numerator of the ratios")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rounds-1m", type=int, default=3, help="rounds at sizes above 200k points")
    ap.add_argument("--grid-max", type=int, default=140_000, help="largest N for simgap-grid (slow on big LiDAR pairs)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-contender memory processes")
    ap.add_argument("--realdata", type=Path, default=_REALDATA)
    ap.add_argument("--json", default=None, help="also write every result as JSON")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        kind, pair, size, *rest = args.worker
        if kind == "time":
            out = time_worker(pair, size, rest, args.rounds, args.realdata)
        else:
            out = mem_worker(pair, size, rest[0], args.realdata)
        print(json.dumps(out))
        return 0

    results = []
    for pair in args.pairs:
        for size in args.sizes:
            if size == str(ONE_M) and pair not in ("consecutive", "uniform"):
                continue  # 1M points: stacked scans of one drive, and uniform
            big = size != "full" and int(size) > 200_000
            contenders = [
                c for c in args.contenders if not (c == "simgap-grid" and size != "full" and int(size) > args.grid_max)
            ]
            rounds = args.rounds_1m if big else args.rounds
            wargs = ["--worker", "time", pair, size, *contenders, "--rounds", str(rounds)]
            res = _sub([*wargs, "--realdata", str(args.realdata)])
            if "error" in res:
                print(f"  {pair} {size}: failed: {res['error']}", file=sys.stderr)
                continue
            res["mem"] = {}
            if not args.no_memory:
                for c in res["times"]:
                    m = _sub(["--worker", "mem", pair, size, c, "--realdata", str(args.realdata)])
                    res["mem"][c] = m.get("rss_delta")
                    if m.get("gpu"):
                        res.setdefault("gpu_mem", []).append(c)
            results.append(res)
            print(f"  done {pair} {size} ({res['n'][0]} x {res['n'][1]})", file=sys.stderr, flush=True)

    ours_name = args.ours
    where = "CPU" if ours_name == "simgap" else f"{ours_name} against CPU and GPU peers"
    print(f"\nExact Chamfer, {where} ({os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f} at the end); ratio ="
          f" median over shuffled rounds of {ours_name} time / peer time (< 1: {ours_name} faster); memory = peak RSS"
          " growth of one call in a fresh process\n")  # fmt: skip
    ran = {c for r in results for c in r["times"]}
    peers = [c for c in CONTENDERS if c != ours_name and c in ran]
    ref = "pykdtree" if "pykdtree" in ran else "ckdtree"
    hdr = ["pair", "N x M", ours_name, *(f"/ {p}" for p in peers), "best peer", f"{ours_name} mem", "best peer mem",
           f"max |CD - {ref}|"]  # fmt: skip
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in results:
        t = r["times"]
        ours = t[ours_name]
        cells = []
        best, best_t = None, float("inf")
        for p in peers:
            if p not in t:
                cells.append("-")
                continue
            cells.append(f"{statistics.median(o / q for o, q in zip(ours, t[p], strict=True)):.2f}")
            if not p.startswith("simgap") and statistics.median(t[p]) < best_t:
                best, best_t = p, statistics.median(t[p])
        mem = r["mem"]
        gpu = set(r.get("gpu_mem", []))  # device-memory peaks: compared with device peers only
        peer_mem = [
            v
            for p, v in mem.items()
            if not p.startswith("simgap") and v is not None and (p in gpu) == (ours_name in gpu)
        ]
        vals = r["values"]
        err = max(abs(v - vals[ref]) for c, v in vals.items() if c != "torch-cuda") if ref in vals else float("nan")
        if "torch-cuda" in vals and ref in vals:
            cells[peers.index("torch-cuda")] += f" (err {abs(vals['torch-cuda'] - vals[ref]):.0e})"
        print(
            f"| {r['pair']} | {r['n'][0]} x {r['n'][1]} | {statistics.median(ours) * 1e3:.0f} ms | "
            + " | ".join(cells)
            + f" | {best} | {_mb(mem.get(ours_name))} | {_mb(min(peer_mem) if peer_mem else None)} | {err:.1e} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:.0f} MB"


if __name__ == "__main__":
    sys.exit(main())
