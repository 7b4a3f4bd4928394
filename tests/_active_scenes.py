"""Tiny deterministic LiDAR scenes for the active-learning tests (vlp-16 beams, SemanticKITTI layout).

Each scan casts the vlp-16 beam table over ``columns`` azimuths: rays below the horizon hit the ground plane
(road, id 40) within 25 m, a car (id 10) occupies a seeded azimuth sector at 6-10 m, the rest hits a building
wall (id 50) at a seeded range. Small enough (~700 points) for a test to train on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simgap_ext.data.semantickitti import pack_labels, write_bin
from simgap_ext.sensors import load_sensor_profile


def scan(seed: int, columns: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    el = np.radians(np.asarray(load_sensor_profile("vlp-16").vertical_angles_deg))
    az = np.linspace(-np.pi, np.pi, columns, endpoint=False) + 0.01
    e, a = np.meshgrid(el, az, indexing="ij")
    e, a = e.ravel(), a.ravel()
    d = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=1)
    wall = rng.uniform(15.0, 22.0)
    car_az, car_r = rng.uniform(-np.pi, np.pi), rng.uniform(6.0, 10.0)
    r = np.full(e.size, wall)
    cls = np.full(e.size, 50)
    ground = np.where(d[:, 2] < 0, -1.73 / np.minimum(d[:, 2], -1e-6), np.inf)
    hit_ground = ground < min(25.0, wall)
    r[hit_ground], cls[hit_ground] = ground[hit_ground], 40
    in_car = (np.abs(np.angle(np.exp(1j * (a - car_az)))) < 0.5) & (d[:, 2] * car_r > -1.7) & (d[:, 2] * car_r < 0.0)
    r[in_car], cls[in_car] = car_r, 10
    pts = (d * r[:, None]).astype(np.float32) + rng.normal(0, 0.01, size=d.shape).astype(np.float32)
    return pts, cls.astype(np.uint32)


def write_sequence(root: Path, seeds: range | list[int], *, labels: bool = True) -> Path:
    (root / "velodyne").mkdir(parents=True, exist_ok=True)
    if labels:
        (root / "labels").mkdir(exist_ok=True)
    for s in seeds:
        pts, cls = scan(s)
        write_bin(root / "velodyne" / f"{s:06d}.bin", pts, np.full(len(pts), 0.5, np.float32))
        if labels:
            pack_labels(cls, np.zeros_like(cls)).tofile(root / "labels" / f"{s:06d}.label")
    return root
