"""How much the tune's search seed moves `bench_fidelity`'s gate acceptance: one tune per seed, judged by two banks.

``simgap tune`` reads most of its model off the real range images (deterministic) and searches three terms with
CMA-ES (``drop_offset``, ``far_range50``, ``far_width``; :mod:`simgap_ext.tune.search`); the search seed picks the
CMA-ES path and the clean search scenes. ``bench_fidelity`` tunes once (``--tune-seed``, default 0) and reports the
gate's acceptance of 100 rendered scenes against a bank of the held-out keyframes. This script repeats that tune for
several seeds on the same fit keyframes and judges each tuned model's renders (``bench_fidelity``'s world and scene
seeds) by two banks, built once:

- ``held``: the held-out keyframes (``bench_fidelity``'s acceptance, the issue's target);
- ``fit``: the keyframes the tune was fitted on (no held-out data: what a user could check on their own scans).

and prints per seed the searched terms, the search objective and both acceptances, then their mean, standard
deviation and range, and the acceptance of the other real stretch against the held-out bank (what real scans of
the same drive reach against it). ``--reverse`` is ``bench_fidelity``'s other fold (fit on the last keyframes).

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/tune_seeds.py [--seeds 0,1,2,3,4,5] [--frames 100] [--reverse]
        [--device cpu] [--real DIR] [--fit 20] [--json OUT] [--evaluations N] [--far-bound] [--shift runs|per-return]
        [--gate-term|--no-gate-term] [--synthetic-frames N]

The search options tune as ``simgap tune`` with those flags (e.g. a longer search: does the spread over seeds
shrink?).
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
from bench_fidelity import SCENE_SEED, bench_world, load_fold, split_stretches

from simgap_ext.cli.cmd_tune import add_search_options, search_options

__all__ = ["main", "run", "spread"]

_DEFAULT_REAL = realdata_root() / NUSCENES
_TERMS = ("drop_offset", "far_range50", "far_width")


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "sd", "min", "max"}`` of ``values`` (``sd`` the sample standard deviation, 0 for one value).

    Raises:
        ValueError: no values.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("spread of no values")
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def run(
    real_dir: Path,
    *,
    seeds: Sequence[int],
    n_fit: int,
    frames: int,
    device: str | None,
    reverse: bool = False,
    **search: Any,
) -> dict[str, Any]:
    """Tune once per seed and judge every tune's renders by both banks; returns a JSON-safe dict. ``search``: the
    tune's search keywords (:func:`~simgap_ext.cli.cmd_tune.search_options`: ``evaluations``, ``far_bound``, ...)."""
    from simgap_ext.backends.warp import WarpLidarSource
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate import FrameGate, GateConfig, ReferenceBank
    from simgap_ext.sensors import load_sensor_profile
    from simgap_ext.tune.profile import tune_profile

    t_start = time.perf_counter()
    base = load_sensor_profile("hdl-32")
    fit_scans, fit_frames, held = load_fold(real_dir, base, n_fit, reverse=reverse)
    fit_idx, held_idx = split_stretches(len(fit_frames) + len(held), n_fit, reverse=reverse)  # for the report
    config = GateConfig()
    gates = {
        name: FrameGate(ReferenceBank.build(frs, config=config, device=device), config, device=device, quarantine=False)
        for name, frs in (("held", held), ("fit", fit_frames))
    }
    # the real scans of the fit stretch against the held-out bank: what the same drive reaches there
    real_accepted = sum(
        int(gates["held"].evaluate(roll_up_frame(f), update_quarantine=False).accepted) for f in fit_frames
    )
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        tuned, report = tune_profile(
            (fit_scans, fit_frames), base, rotation_rate_hz=20.0, device=device, seed=int(seed), **search
        )
        model = tuned.preset("tuned").model
        src = WarpLidarSource(tuned, "tuned", device=device, randomizer=bench_world(tuned))
        renders = [src.render(seed=SCENE_SEED + i, frame_id=i) for i in range(frames)]
        accepted = {
            name: sum(int(g.evaluate(f, update_quarantine=False).accepted) for f in renders) / frames
            for name, g in gates.items()
        }
        rows.append(
            {
                "seed": int(seed),
                **{k: float(getattr(model, k)) for k in _TERMS},
                "objective": float(report["search"]["objective_best"]),
                "accepted_held": accepted["held"],
                "accepted_fit": accepted["fit"],
                "seconds": time.perf_counter() - t0,
            }
        )
        print(_row(rows[-1]), flush=True)
    return {
        "real": str(real_dir),
        "reverse": reverse,
        "fit_keyframes": fit_idx,
        "held_keyframes": held_idx,
        "frames": frames,
        "search": search,
        "real_fit_stretch_accepted_held": real_accepted / len(fit_frames),
        "rows": rows,
        "spread_held": spread([r["accepted_held"] for r in rows]),
        "spread_fit": spread([r["accepted_fit"] for r in rows]),
        "seconds": time.perf_counter() - t_start,
    }


_HEAD = (
    f"{'seed':>4} {'drop shift':>10} {'far50 m':>8} {'width m':>8} {'objective':>9} {'held bank':>9} {'fit bank':>8}"
)


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['seed']:>4} {r['drop_offset']:>10.2f} {r['far_range50']:>8.1f} {r['far_width']:>8.1f} "
        f"{r['objective']:>9.3f} {100 * r['accepted_held']:>8.0f}% {100 * r['accepted_fit']:>7.0f}%"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the tunes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=_DEFAULT_REAL, help="nuScenes keyframe folders")
    parser.add_argument("--fit", type=int, default=20, help="keyframes the tunes are fitted on (default 20)")
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="comma-separated search seeds (default 0-5)")
    parser.add_argument("--frames", type=int, default=100, help="rendered scenes per tune (default 100)")
    parser.add_argument(
        "--reverse", action="store_true", help="fit on the last keyframes (bench_fidelity's other fold)"
    )
    parser.add_argument("--device", default=None, help="Warp device (default: CUDA when available, else CPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    add_search_options(parser)  # --far-bound, --shift, --gate-term, --synthetic-frames, --evaluations: as simgap tune
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"tune_seeds: {args.real} not found (needs ../shared/realdata)", file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: comma-separated integers expected, got {args.seeds!r}")
    if not seeds or args.frames < 1:
        parser.error("--seeds needs at least one seed and --frames at least 1")
    fold = "last" if args.reverse else "first"
    print(f"tunes on the {fold} {args.fit} keyframes; gate acceptance of {args.frames} rendered scenes per tune")
    print(_HEAD)
    print("-" * len(_HEAD))
    res = run(
        args.real,
        seeds=seeds,
        n_fit=args.fit,
        frames=args.frames,
        device=args.device,
        reverse=args.reverse,
        **search_options(args),
    )
    for bank in ("held", "fit"):
        s = res[f"spread_{bank}"]
        print(
            f"{bank} bank: mean {100 * s['mean']:.0f}%, sd {100 * s['sd']:.0f} points, "
            f"{100 * s['min']:.0f}-{100 * s['max']:.0f}% over {len(res['rows'])} seeds"
        )
    print(f"the fit stretch's real scans against the held-out bank: {100 * res['real_fit_stretch_accepted_held']:.0f}%")
    print(f"total {res['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
