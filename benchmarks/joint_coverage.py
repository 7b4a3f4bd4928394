"""False-alarm rates of the gate's calibrated bounds by simulation (the numbers in docs/gate.md).

1. The joint deviation test (:mod:`simgap_ext.gate.joint`): banks of ``n`` real frames of 4 normal statistics in
   very different units, correlated ``rho``; each frame's leave-one-out deviations as the bank keeps them, a new
   frame's deviations from the mean of all; the share of new frames whose ``T`` exceeds the prediction bound
   (margin 1) at ``--level``. Next to it, the same with the degrees of freedom fixed at the number of components
   (what assuming independent components, as Fisher's combination does, amounts to).
2. The thin-class ring-continuity bound (:func:`simgap_ext.gate.tailbound.heteroscedastic_bound`): real frames of
   300–1500 points with frame-to-frame variation ``tau``, new frames of ``m`` points; the share exceeding the bank's
   plain bound (:func:`~simgap_ext.gate.tailbound.loo_deviation_bound`) and the heteroscedastic one.

    PYTHONPATH=$PWD python benchmarks/joint_coverage.py [--trials 1000] [--level 0.95]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


def _joint_trial(rng: np.random.Generator, n: int, rho: float, level: float) -> tuple[bool, bool]:
    from scipy.special import fdtri

    from simgap_ext.gate.joint import fit_joint_bound

    p = 4
    cov = np.full((p, p), rho) + (1 - rho) * np.eye(p)
    v = rng.standard_normal((n + 1, p)) @ np.linalg.cholesky(cov).T * np.array([1.0, 0.1, 5.0, 0.01])
    real, new = v[:n], v[n]
    dev = np.abs(real - (real.sum(axis=0) - real) / (n - 1))
    names = ("a", "b", "c", "d")
    fit = fit_joint_bound(dev, np.ones_like(dev, bool), names, names, {}, level)
    t = fit.statistic(dict(zip(names, np.abs(new - real.mean(axis=0)), strict=True)))
    independent = fit.bound / fdtri(fit.df, fit.df * fit.n_real, level) * fdtri(p, p * fit.n_real, level)
    return t > fit.bound, t > independent


def _density_trial(rng: np.random.Generator, n: int, m_new: int, tau: float, level: float) -> tuple[bool, bool]:
    from simgap_ext.gate.tailbound import heteroscedastic_bound, loo_deviation_bound

    m = rng.integers(300, 1500, n)
    p_true = np.clip(0.9 + rng.normal(0, tau, n + 1), 0.01, 0.99)
    v = rng.binomial(m, p_true[:n]) / m
    p_new = rng.binomial(m_new, p_true[n]) / m_new
    dev = abs(p_new - v.mean())
    loo = np.abs(v - (v.sum() - v) / (n - 1))
    wide = heteroscedastic_bound(v, np.sqrt(v * (1 - v) / m), math.sqrt(p_new * (1 - p_new) / m_new), level)
    return dev > loo_deviation_bound(loo, level), dev > wide


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--level", type=float, default=0.95)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    print(f"joint test, nominal false-alarm rate {1 - args.level:.3f}, {args.trials} trials per row")
    print("| real frames | correlation | exceeds the joint bound | exceeds it with df = 4 (independence) |")
    print("|---:|---:|---:|---:|")
    for n in (8, 15, 40):
        for rho in (0.0, 0.6, 0.9):
            runs = np.array([_joint_trial(rng, n, rho, args.level) for _ in range(args.trials)])
            print(f"| {n} | {rho} | {runs[:, 0].mean():.3f} | {runs[:, 1].mean():.3f} |")
        sys.stdout.flush()
    print(f"\nring continuity of a thin class, nominal {1 - args.level:.3f}, 12 real frames of 300-1500 points")
    print("| new frame's points | tau | exceeds the plain bound | exceeds the heteroscedastic bound |")
    print("|---:|---:|---:|---:|")
    for m_new in (30, 100, 1000):
        for tau in (0.005, 0.02):
            runs = np.array([_density_trial(rng, 12, m_new, tau, args.level) for _ in range(args.trials)])
            print(f"| {m_new} | {tau} | {runs[:, 0].mean():.3f} | {runs[:, 1].mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
