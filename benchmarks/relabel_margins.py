"""How far a relabelled class moves the receiving class's gate components, in units of real-vs-real spread.

For up to ``--folds`` held-out real scans per dataset (evenly spaced, as ``validate_real.py``), a bank is built
from the other scans with the shipped configuration, and the held-out scan is scored as it is and with its scene
class ``vehicle`` relabelled ``vegetation`` (``gate.validation.perturb(..., "relabel_scene")``). For the receiving
class (vegetation) and each per-class component the table prints, in units of the RMS of the bank's leave-one-out
real deviations of that class (the scale of :func:`simgap_ext.gate.tailbound.loo_deviation_bound`):

- ``relabel``: the relabelled scan's distance (median and largest over folds);
- ``real``: the unperturbed scan's distance;
- ``fails at``: where that component alone fails the class under ``strict_components`` (half its d_max, i.e.
  ``3 x max(bound, floor)`` with the default margin and threshold; median over folds).

A ``joint`` row gives the shipped joint deviation test (:mod:`simgap_ext.gate.joint`) of the receiving class: its
statistic ``T`` (the mean square of the components' standardized deviations, each capped at its own bound: squared
RMS units, not the units of the rows above) and, under "fails at", the limit ``T`` is held to (``calibration_margin``
x its prediction bound). A last line per dataset gives the accepted shares of two joint tests: the shipped one
(no class of the frame beyond its joint limit) and one that was tried and not shipped, Fisher's combination of each
class's per-component Student-t p-values (``p = 2 sf_{t_{n-1}}(d / (RMS sqrt(1 - 1/n^2)))``), the frame rejected
when some class's combined p is below the Bonferroni level ``1 - q_class``.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/relabel_margins.py [--folds 10] [DIR ...]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from _realdata import realdata_root  # benchmarks/ helper (run as a script)
from scipy import stats

import simgap_ext.gate.bank as bank_module
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.tailbound import loo_deviation_bound
from simgap_ext.gate.validation import perturb

REALDATA = realdata_root()
DEFAULT = [REALDATA / "kitti360_osm_bki", REALDATA / "nuscenes_lidarseg_cascol", REALDATA / "mcd_kth_day_06"]
COMPONENTS = ("roughness", "density", "share", "height", "plausibility", "foreign")
TARGET = "vegetation"


def _capture() -> dict:
    """Wrap the bank's per-class calibration to keep the leave-one-out deviations it is given (per build)."""
    seen: dict = {}
    original = bank_module._class_thresholds

    def wrapper(comp, per_class, q_class):
        seen.setdefault("values", {})[comp] = {k: list(v) for k, v in per_class.items()}
        seen["q_class"] = q_class
        return original(comp, per_class, q_class)

    bank_module._class_thresholds = wrapper
    return seen


def _joint_p(dec, values: dict, q_class: float) -> float:
    """Smallest Fisher-combined p over the frame's classes (1 when none has two calibrated components)."""
    best = 1.0
    for cd in dec.per_class.values():
        ps = []
        for comp, (d, _) in cd.evidence.items():
            v = values.get(comp, {}).get(cd.name)
            if comp in COMPONENTS and v is not None and len(v) >= 3:
                n = len(v)
                rms = math.sqrt(float(np.mean(np.square(v)))) * math.sqrt(1 - 1 / n**2)
                ps.append(2 * stats.t.sf(d / max(rms, 1e-12), n - 1))
        if len(ps) >= 2:
            best = min(best, float(stats.chi2.sf(-2 * np.sum(np.log(np.maximum(ps, 1e-300))), 2 * len(ps))))
    return best


def run(path: Path, folds: int) -> None:
    frames = list(iter_real_scans(path))
    cfg = load_gate_config()
    n = len(frames)
    held = np.unique(np.linspace(0, n - 1, min(folds, n)).round().astype(int))
    rows: dict[str, list[tuple[float, float, float]]] = {}
    joint = {"real": [], "relabel": []}
    shipped = {"real": [], "relabel": []}
    rng = np.random.default_rng(0)
    for i in held:
        seen = _capture()
        bank = ReferenceBank.build([frames[j] for j in range(n) if j != i], config=cfg, device="cpu", seed=0)
        values = seen["values"]
        gate = FrameGate(bank, cfg, device="cpu", quarantine=False)
        real = gate.evaluate(frames[i][1], update_quarantine=False)
        pf = perturb(frames[i][1], "relabel_scene", 0, rng)
        if pf is None:
            continue
        rel = gate.evaluate(pf, update_quarantine=False)
        level = 1.0 - seen["q_class"]
        joint["real"].append(_joint_p(real, values, seen["q_class"]) > level)
        joint["relabel"].append(_joint_p(rel, values, seen["q_class"]) > level)
        for key, dec in (("real", real), ("relabel", rel)):
            shipped[key].append(all(cd.components.get("joint", 1.0) >= 0.5 for cd in dec.per_class.values()))
        mine = rel.per_class.get(TARGET)
        if mine is not None and "joint" in mine.evidence:
            t_rel, d_max = mine.evidence["joint"]
            d_real = real.per_class.get(TARGET)
            t_real = d_real.evidence["joint"][0] if d_real is not None and "joint" in d_real.evidence else math.nan
            rows.setdefault("joint", []).append((t_rel, t_real, d_max / 2))
        if TARGET not in rel.per_class:
            continue
        for comp in COMPONENTS:
            v = values.get(comp, {}).get(TARGET)
            if comp not in rel.per_class[TARGET].evidence or v is None or len(v) < 2:
                continue
            rms = math.sqrt(float(np.mean(np.square(v))))
            fails = 3 * max(loo_deviation_bound(v, seen["q_class"]), bank_module.CALIBRATION_FLOORS[comp]) / rms
            d_real = real.per_class.get(TARGET)
            r = d_real.evidence[comp][0] / rms if d_real is not None and comp in d_real.evidence else math.nan
            rows.setdefault(comp, []).append((rel.per_class[TARGET].evidence[comp][0] / rms, r, fails))
    print(f"\n**{path} ({n} scans, {len(held)} folds): class {TARGET} with every vehicle point relabelled as it**\n")
    print("| component | relabel (median / max) | real (median / max) | fails at (median) |")
    print("|---|---:|---:|---:|")
    for comp in [c for c in (*COMPONENTS, "joint") if c in rows]:
        v = rows[comp]
        a = np.array(v)
        print(
            f"| {comp} | {np.median(a[:, 0]):.1f} / {a[:, 0].max():.1f} | {np.nanmedian(a[:, 1]):.1f} / "
            f"{np.nanmax(a[:, 1]):.1f} | {np.median(a[:, 2]):.1f} |"
        )
    print(
        f"\nunits: RMS of the bank's leave-one-out real deviations of {TARGET} (joint: mean square of them). "
        f"Shipped joint test alone: real accepted {100 * np.mean(shipped['real']):.0f} %, scene class relabelled "
        f"accepted {100 * np.mean(shipped['relabel']):.0f} %. Joint Fisher test (not shipped): "
        f"real accepted {100 * np.mean(joint['real']):.0f} %, scene class relabelled accepted "
        f"{100 * np.mean(joint['relabel']):.0f} %"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--folds", type=int, default=10)
    args = ap.parse_args()
    for d in args.dirs or [d for d in DEFAULT if d.is_dir()]:
        run(d, args.folds)
