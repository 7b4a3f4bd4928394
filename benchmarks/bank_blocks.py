"""Real scans against a bank of another stretch of the same drive: how the gate's acceptance falls off along a drive.

``simgap validate`` (docs/gate.md) measures real-vs-real acceptance leaving one scan out of the bank: every real set
of ``../shared/realdata`` is accepted at 100 %. In a bank of consecutive scans (nuScenes keyframes, 0.5 s apart) the
left-out scan's near-duplicate neighbours stay in the bank. This benchmark cuts the scans into consecutive blocks,
builds a bank from each block, and judges every other block's real scans with it (FrameGate, default
``GateConfig``, geometric; the real classes rolled up as ``bench_fidelity`` does). That is what a bank of one
stretch says about real scans from elsewhere on the same drive, the situation of ``bench_fidelity``'s held-out bank
(docs/backend.md "Issue 10, twelfth pass").

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bank_blocks.py [--real DIR] [--sensor hdl-32] [--block 10]
        [--device cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _realdata import NUSCENES, realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main", "blocks", "off_diagonal", "run"]

_DEFAULT_REAL = realdata_root() / NUSCENES


def blocks(n: int, size: int) -> list[list[int]]:
    """Consecutive blocks of ``size`` scan indices out of ``n`` (a last, shorter block is dropped: every bank holds
    ``size`` scans).

    Raises:
        ValueError: ``size`` below 2 (a bank needs two scans to calibrate) or fewer than two blocks.
    """
    if size < 2:
        raise ValueError(f"a block needs at least 2 scans (a bank calibrates leaving one out), got {size}")
    if n // size < 2:
        raise ValueError(f"{n} scans make fewer than two blocks of {size}")
    return [list(range(b * size, (b + 1) * size)) for b in range(n // size)]


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """The entries of a square ``(B, B)`` matrix off its diagonal (row-major): every bank against another block."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {m.shape}")
    return m[~np.eye(m.shape[0], dtype=bool)]


def run(real_dir: Path, *, sensor: str, block: int, device: str | None) -> dict[str, Any]:
    """Build a bank per block and judge every other block's scans; returns a JSON-safe dict."""
    from simgap_ext.data import iter_scans
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.sensors import load_sensor_profile

    t0 = time.perf_counter()
    if any(real_dir.glob("*/points.bin")):  # nuScenes keyframe folders, read in drive order as bench_fidelity does
        from simgap_ext.tune.profile import load_real_scans

        _, frames = load_real_scans(real_dir, load_sensor_profile(sensor))
    else:
        frames = [fr for _, fr in iter_scans(real_dir, sensor=sensor)]
    spans = blocks(len(frames), block)
    rolled = [roll_up_frame(f) for f in frames]  # judged by every other block's bank: roll each up once
    cfg = GateConfig()
    accepted = np.full((len(spans), len(spans)), np.nan)
    for i, bank_span in enumerate(spans):
        bank = ReferenceBank.build([frames[k] for k in bank_span], config=cfg, device=device)
        gate = FrameGate(bank, cfg, device=device, quarantine=False)
        for j, span in enumerate(spans):
            if i == j:
                continue
            ok = [gate.evaluate(rolled[k], update_quarantine=False).accepted for k in span]
            accepted[i, j] = float(np.mean(ok))
        print(f"bank {bank_span[0]}-{bank_span[-1]}: " + _row(accepted[i]), flush=True)
    off = off_diagonal(accepted)
    return {
        "real": str(real_dir),
        "sensor": sensor,
        "block": block,
        "blocks": [[s[0], s[-1]] for s in spans],
        "accepted": [[None if np.isnan(v) else float(v) for v in row] for row in accepted],
        "mean_off_diagonal": float(np.mean(off)),
        # the blocks next to each bank's, on both sides
        "adjacent": float(np.mean(np.r_[np.diag(accepted, 1), np.diag(accepted, -1)])),
        "seconds": time.perf_counter() - t0,
    }


def _row(values: Sequence[float]) -> str:
    return " ".join("   -" if np.isnan(v) else f"{100 * v:3.0f}%" for v in values)


def main(argv: list[str] | None = None) -> int:
    """Print the matrix."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="real scans in drive order")
    parser.add_argument("--sensor", default="hdl-32", help="profile the scans are organised on (default hdl-32)")
    parser.add_argument("--block", type=int, default=10, help="consecutive scans per block and bank (default 10)")
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"bank_blocks: {args.real} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    print(f"rows: the bank's block; columns: the judged block ({args.block} consecutive scans each); share accepted")
    try:
        res = run(args.real, sensor=args.sensor, block=args.block, device=args.device)
    except ValueError as e:
        parser.error(str(e))
    print(
        f"mean over every bank and other block {100 * res['mean_off_diagonal']:.0f}%, adjacent blocks "
        f"{100 * res['adjacent']:.0f}% (leaving one scan out of a bank: 100 %, docs/gate.md)"
    )
    print(f"total {res['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
