"""What the run directory's safety costs per attempt, next to what validating a frame once saves.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_run_dir.py [--sensor vlp-16] [--repeats 30]

Per accepted attempt the runner now writes ``.simgap-pending.json`` (temp file + rename, no fsync: see
:meth:`~simgap_ext.pipeline.run_dir.RunDir.record_pending`; with an fsync it cost ~20 ms here) before the scan
files, and takes the directory lock once per run. A frame is validated once into
a :class:`~simgap_ext.frame.Frame` that the gate, the exporter and the SemanticKITTI writer accept as is (before,
each validated it again). The table prints medians over ``--repeats`` on one rendered frame of the embedded backend
(seed 7), and for scale the export of that frame's scan + label files (two atomic writes) and the lock.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensor", default="vlp-16")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from simgap_ext.backends import get_scene_source
    from simgap_ext.data import write_semantickitti_scan as export
    from simgap_ext.frame import validate_frame
    from simgap_ext.pipeline.run_dir import RunDir

    frame = get_scene_source("warp", sensor=args.sensor, preset="realistic", device="cpu").render(seed=7, frame_id=0)
    plain = dict(frame)  # a plain dict: validated in full on every call
    n = len(frame["data"])
    with tempfile.TemporaryDirectory() as tmp:
        rd = RunDir(Path(tmp) / "run")
        rd.create()
        r = args.repeats
        rows = [
            ("validate_frame, plain dict (each of 4 stages before)", _median_ms(lambda: validate_frame(plain), r)),
            ("validate_frame, validated Frame (now)", _median_ms(lambda: validate_frame(frame), r)),
            ("record_pending (write + rename, no fsync)", _median_ms(lambda: rd.record_pending("0" * 16, 0, n), r)),
            ("export scan + label (2 atomic writes)", _median_ms(lambda: export(rd.path, 0, frame), r)),
            ("lock + unlock (once per run)", _lock_ms(rd, r)),
        ]
    print(f"sensor {args.sensor}, one frame of {n} points, median of {args.repeats} runs (ms)")
    print(f"{'step':58s} {'ms':>9s}")
    for name, ms in rows:
        print(f"{name:58s} {ms:9.3f}")
    saved = 3 * (rows[0][1] - rows[1][1])
    print(
        f"per accepted attempt: +{rows[2][1]:.3f} ms pending record, -{saved:.3f} ms of repeated validation "
        f"(3 of the 4 validations of an accepted frame skipped); ratio pending/export = {rows[2][1] / rows[3][1]:.2f}"
    )


def _lock_ms(rd, repeats: int) -> float:
    def once() -> None:
        with rd.lock():
            pass

    return _median_ms(once, repeats)


if __name__ == "__main__":
    main()
