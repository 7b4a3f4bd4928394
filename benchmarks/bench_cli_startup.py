"""Start-up time of ``simgap --help`` (parser construction): this checkout against another source tree.

Usage::

    python benchmarks/bench_cli_startup.py                        # this checkout only
    python benchmarks/bench_cli_startup.py --trees . /tmp/base    # before/after, rounds interleaved

Each round runs ``python -X importtime -m simgap_ext.cli --help`` once per tree in a fresh process (trees in a
shuffled order, so background load hits them alike) and records the wall time and the cumulative import time of
``simgap_ext.cli`` plus any top-level heavy library (Warp, SciPy, torch) that ``-X importtime`` reports. The table
gives medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("warp", "scipy", "torch", "numpy")


def one_run(tree: Path) -> tuple[float, dict[str, float]]:
    """(wall seconds, {module: cumulative import seconds}) of one ``--help`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simgap_ext.cli", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=True,
    )
    wall = time.perf_counter() - t0
    cum: dict[str, float] = {}
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        mod = name.strip()
        if mod in (*HEAVY, "simgap_ext.cli"):
            cum[mod] = cum.get(mod, 0.0) + int(cumulative) / 1e6
    return wall, cum


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", nargs="+", type=Path, default=[Path(__file__).resolve().parents[1]])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    trees = [t.resolve() for t in args.trees]
    walls: dict[Path, list[float]] = {t: [] for t in trees}
    cums: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}
    rng = random.Random(3)
    for _ in range(args.rounds):
        order = trees[:]
        rng.shuffle(order)
        for t in order:
            wall, cum = one_run(t)
            walls[t].append(wall)
            for mod, sec in cum.items():
                cums[t].setdefault(mod, []).append(sec)
    print(f"\n`simgap --help`, median of {args.rounds} interleaved rounds ({os.cpu_count()} cores, load avg "
          f"{os.getloadavg()[0]:.1f})\n")  # fmt: skip
    cols = ("simgap_ext.cli", *HEAVY)
    print("| tree | wall | " + " | ".join(f"import {c}" for c in cols) + " |")
    print("|" + "---|" * (2 + len(cols)))
    for t in trees:
        cells = [f"{statistics.median(cums[t][c]):.2f} s" if c in cums[t] else "not imported" for c in cols]
        print(f"| {t} | {statistics.median(walls[t]):.2f} s | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
