"""Per real scan and class: points, ring-continuity density and its sampling noise (binomial standard error).

The gate's ``density`` component compares a class's share of points with a ring neighbour against the bank's mean.
For a thin class the share is estimated from a handful of points, so its own sampling noise,
``sqrt(p (1 - p) / n)``, can exceed the spread the bank calibrated from its frames. This prints, for every scan of
a dataset (classes rolled up to the scene vocabulary, as the bank does), ``n``, the density and that standard error
for the requested classes: the evidence behind the MCD real-vs-real rejections in docs/gate.md.

    SIMGAP_REALDATA=/work/shared/realdata PYTHONPATH=$PWD python benchmarks/class_density_noise.py \
        [--dataset mcd_kth_day_06] [--classes fence pole vegetation]
"""

from __future__ import annotations

import argparse
import math
import sys

from _realdata import realdata_root  # benchmarks/ helper (run as a script)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from simgap_ext.data.taxonomy import roll_up_frame
    from simgap_ext.gate.bank import sensor_geometry
    from simgap_ext.gate.config import GateConfig
    from simgap_ext.gate.frame_stats import frame_stats
    from simgap_ext.gate.realsets import detect_layout, iter_real_scans

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mcd_kth_day_06", help="folder under ../shared/realdata")
    parser.add_argument("--classes", nargs="+", default=["fence", "pole", "vegetation"])
    args = parser.parse_args(argv)
    root = realdata_root() / args.dataset
    if not root.is_dir():
        print(f"no real data at {root} (set SIMGAP_REALDATA)", file=sys.stderr)
        return 2
    sensor = detect_layout(root)[2]
    beams, columns = sensor_geometry(sensor)
    cfg = GateConfig()
    print(f"{args.dataset} ({sensor}): n points, density, binomial standard error sqrt(p (1 - p) / n)")
    print("| scan | " + " | ".join(args.classes) + " |")
    print("|---|" + "---:|" * len(args.classes))
    for name, frame in iter_real_scans(root):
        st = frame_stats(
            roll_up_frame(frame),
            vertical_angles_deg=beams,
            horizontal_resolution=columns,
            background_classes=cfg.background_classes,
        )
        cells = []
        for c in args.classes:
            d, n = st.class_density(c), st.class_points.get(c, 0)
            cells.append("—" if d is None else f"{n}: {d:.3f} ± {math.sqrt(d * (1 - d) / max(n, 1)):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
