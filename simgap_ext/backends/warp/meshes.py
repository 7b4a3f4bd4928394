"""Triangle-mesh primitives and the class object builders of the embedded LiDAR backend.

Everything here is plain NumPy: a :class:`TriMesh` is (V, 3) float64 vertices + (F, 3) int64 faces. Class
builders return a mesh in the object's local frame (x forward, y left, z up, origin on the ground under the
object's centre) with randomized dimensions and articulation-like variation (limb swing, crank angle, steering,
open door, load height) drawn from the given ``np.random.Generator``. Meshes stay small (tens to a few hundred
triangles per object) so that a whole scene builds one ``wp.Mesh`` in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TriMesh",
    "merge",
    "box",
    "hexahedron",
    "cylinder",
    "ellipsoid",
    "rotation_matrix",
    "limb",
    "make_pedestrian",
    "make_vehicle",
    "make_cyclist",
    "make_wheelchair_user",
    "make_cargo_pallet",
    "make_building",
    "make_pole",
    "make_vegetation",
    "make_street_tree",
    "CLASS_BUILDERS",
]


@dataclass
class TriMesh:
    """A triangle soup.

    Attributes:
        vertices: (V, 3) float64 positions, metres.
        faces: (F, 3) int64 vertex indices.
    """

    vertices: np.ndarray
    faces: np.ndarray

    def transformed(self, rotation: np.ndarray | None = None, translation: Sequence[float] = (0.0, 0.0, 0.0)):
        """Return ``R @ v + t`` for every vertex (rotation (3, 3), translation (3,))."""
        v = self.vertices if rotation is None else self.vertices @ np.asarray(rotation, dtype=np.float64).T
        return TriMesh(v + np.asarray(translation, dtype=np.float64), self.faces.copy())

    @property
    def n_faces(self) -> int:
        """Number of triangles."""
        return int(self.faces.shape[0])


def merge(parts: Sequence[TriMesh]) -> TriMesh:
    """Concatenate meshes into one (face indices re-based)."""
    if not parts:
        return TriMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    verts, faces, base = [], [], 0
    for p in parts:
        verts.append(p.vertices)
        faces.append(p.faces + base)
        base += p.vertices.shape[0]
    return TriMesh(np.concatenate(verts).astype(np.float64), np.concatenate(faces).astype(np.int64))


def rotation_matrix(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """(3, 3) float64 rotation R = Rz(yaw) @ Ry(pitch) @ Rx(roll), radians."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


_HEX_FACES = np.array(
    [
        [0, 2, 1], [0, 3, 2],  # bottom
        [4, 5, 6], [4, 6, 7],  # top
        [0, 1, 5], [0, 5, 4],
        [1, 2, 6], [1, 6, 5],
        [2, 3, 7], [2, 7, 6],
        [3, 0, 4], [3, 4, 7],
    ],
    dtype=np.int64,
)  # fmt: skip


def hexahedron(corners: np.ndarray) -> TriMesh:
    """A six-faced solid from (8, 3) corners: bottom ring 0-3 then top ring 4-7, same winding."""
    c = np.asarray(corners, dtype=np.float64).reshape(8, 3)
    return TriMesh(c.copy(), _HEX_FACES.copy())


def box(
    size: Sequence[float], center: Sequence[float] = (0.0, 0.0, 0.0), rotation: np.ndarray | None = None
) -> TriMesh:
    """Axis-aligned box of ``size`` (sx, sy, sz) around ``center``, optionally rotated about its centre."""
    sx, sy, sz = (0.5 * float(s) for s in size)
    c = np.array(
        [[-sx, -sy, -sz], [sx, -sy, -sz], [sx, sy, -sz], [-sx, sy, -sz],
         [-sx, -sy, sz], [sx, -sy, sz], [sx, sy, sz], [-sx, sy, sz]],
    )  # fmt: skip
    return hexahedron(c).transformed(rotation, center)


def cylinder(
    radius: float,
    height: float,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    *,
    axis: str = "z",
    segments: int = 12,
    rotation: np.ndarray | None = None,
) -> TriMesh:
    """Closed cylinder of ``radius`` and ``height`` along ``axis`` ("x", "y" or "z") centred on ``center``."""
    ang = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(ang), radius * np.sin(ang)], axis=1)
    h = 0.5 * height
    bottom = np.column_stack([ring, np.full(segments, -h)])
    top = np.column_stack([ring, np.full(segments, h)])
    verts = np.vstack([bottom, top, [[0.0, 0.0, -h], [0.0, 0.0, h]]])
    faces = []
    cb, ct = 2 * segments, 2 * segments + 1
    for i in range(segments):
        j = (i + 1) % segments
        faces += [[i, j, segments + j], [i, segments + j, segments + i], [cb, j, i], [ct, segments + i, segments + j]]
    if axis == "x":
        verts = verts[:, [2, 0, 1]]
    elif axis == "y":
        verts = verts[:, [0, 2, 1]]
    elif axis != "z":
        raise ValueError(f"cylinder axis must be 'x', 'y' or 'z', got {axis!r}")
    return TriMesh(verts, np.asarray(faces, dtype=np.int64)).transformed(rotation, center)


def ellipsoid(
    radii: Sequence[float],
    center: Sequence[float] = (0.0, 0.0, 0.0),
    *,
    n_u: int = 10,
    n_v: int = 6,
    rotation: np.ndarray | None = None,
    jitter: float = 0.0,
    rng: np.random.Generator | None = None,
) -> TriMesh:
    """UV ellipsoid with semi-axes ``radii``; ``jitter`` > 0 perturbs radii per vertex (irregular foliage)."""
    rx, ry, rz = (float(r) for r in radii)
    verts = [[0.0, 0.0, -1.0]]
    for iv in range(1, n_v):
        phi = -0.5 * np.pi + np.pi * iv / n_v
        for iu in range(n_u):
            th = 2.0 * np.pi * iu / n_u
            verts.append([math.cos(phi) * math.cos(th), math.cos(phi) * math.sin(th), math.sin(phi)])
    verts.append([0.0, 0.0, 1.0])
    v = np.asarray(verts)
    if jitter > 0 and rng is not None:
        v = v * (1.0 + jitter * rng.uniform(-1.0, 1.0, size=(v.shape[0], 1)))
    v = v * np.array([rx, ry, rz])
    faces = []
    top = v.shape[0] - 1
    for iu in range(n_u):
        ju = (iu + 1) % n_u
        faces.append([0, 1 + ju, 1 + iu])
        last = 1 + (n_v - 2) * n_u
        faces.append([top, last + iu, last + ju])
    for iv in range(n_v - 2):
        r0, r1 = 1 + iv * n_u, 1 + (iv + 1) * n_u
        for iu in range(n_u):
            ju = (iu + 1) % n_u
            faces += [[r0 + iu, r0 + ju, r1 + ju], [r0 + iu, r1 + ju, r1 + iu]]
    return TriMesh(v, np.asarray(faces, dtype=np.int64)).transformed(rotation, center)


def limb(start: Sequence[float], end: Sequence[float], radius: float, segments: int = 8) -> TriMesh:
    """A cylinder from ``start`` to ``end`` (limbs, frame tubes)."""
    a, b = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    d = b - a
    length = float(np.linalg.norm(d))
    if length < 1e-9:
        return TriMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    z = d / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rot = np.column_stack([x, y, z])
    return cylinder(radius, length, axis="z", segments=segments).transformed(rot, 0.5 * (a + b))


# --------------------------------------------------------------------------------------------- class objects


def _person_parts(rng: np.random.Generator, height: float, *, swing: float, arm_swing: float) -> list[TriMesh]:
    """A standing person of ``height`` with legs/arms swung by the given angles (radians) about the y axis."""
    h = height
    hip_z, shoulder_z = 0.52 * h, 0.81 * h
    hip_w, shoulder_w = 0.09 * h, 0.12 * h
    leg_r, arm_r = 0.038 * h, 0.026 * h
    parts: list[TriMesh] = []
    leg_len = hip_z - 0.02
    for side, sgn in ((1.0, 1.0), (-1.0, -1.0)):
        a = sgn * swing
        hip = np.array([0.0, side * hip_w * 0.6, hip_z])
        foot = hip + leg_len * np.array([math.sin(a), 0.0, -math.cos(a)])
        parts.append(limb(hip, foot, leg_r))
        parts.append(box((0.15 * h / 1.75 * 1.6, 0.09, 0.06), center=(foot[0] + 0.04, foot[1], 0.03)))
        b = -sgn * arm_swing
        sh = np.array([0.0, side * shoulder_w * 1.1, shoulder_z])
        hand = sh + 0.36 * h * np.array([math.sin(b), 0.0, -math.cos(b)])
        parts.append(limb(sh, hand, arm_r))
    torso_depth = 0.11 * h * rng.uniform(0.85, 1.3)
    parts.append(
        ellipsoid((torso_depth, shoulder_w * 1.05, 0.17 * h), center=(0.0, 0.0, 0.5 * (hip_z + shoulder_z) + 0.02 * h))
    )
    parts.append(ellipsoid((0.055 * h, 0.05 * h, 0.065 * h), center=(0.0, 0.0, 0.925 * h), n_u=8, n_v=5))
    return parts


def make_pedestrian(rng: np.random.Generator) -> TriMesh:
    """An adult (KITTI Pedestrian height 1.76 +- 0.11 m) or a child, walking pose varied, optional backpack."""
    height = rng.uniform(1.1, 1.4) if rng.random() < 0.1 else float(np.clip(rng.normal(1.76, 0.11), 1.5, 2.0))
    swing = math.radians(rng.uniform(-28.0, 28.0))
    parts = _person_parts(rng, height, swing=swing, arm_swing=0.8 * swing)
    if rng.random() < 0.3:
        parts.append(box((0.16, 0.3, 0.4), center=(-0.16 * height / 1.75, 0.0, 0.68 * height)))
    return merge(parts)


def make_vehicle(rng: np.random.Generator) -> TriMesh:
    """A car (sedan or SUV shape) or a van: body, tapered cabin, four wheels; steering and an open door vary.

    Dimensions follow the KITTI 3D-object label statistics (Geiger et al. 2012; the means used as anchors by
    SECOND/PointPillars): Car length 3.88 +- 0.43 m, width 1.63 +- 0.10 m, height 1.53 +- 0.14 m; Van (about one
    vehicle in ten) 5.08 x 1.90 x 2.21 m. The 27 cars of ``../shared/realdata`` KITTI labels average
    3.89 x 1.64 x 1.51 m. Box dimensions exclude mirrors, as KITTI's do.
    """
    if rng.random() < 0.1:
        kind = "van"
        length = float(np.clip(rng.normal(5.08, 0.45), 4.3, 6.0))
        width = float(np.clip(rng.normal(1.90, 0.10), 1.7, 2.1))
        height = float(np.clip(rng.normal(2.21, 0.25), 1.8, 2.7))
    else:
        length = float(np.clip(rng.normal(3.88, 0.43), 3.0, 5.2))
        width = float(np.clip(rng.normal(1.63, 0.10), 1.4, 1.95))
        height = float(np.clip(rng.normal(1.53, 0.14), 1.25, 2.0))
        kind = "suv" if height > 1.62 else "sedan"
    wheel_r = rng.uniform(0.3, 0.38)
    clearance = 0.6 * wheel_r
    belt = clearance + (0.45 if kind != "van" else 0.6) * (height - clearance)
    parts = [box((length, width, belt - clearance), center=(0.0, 0.0, 0.5 * (belt + clearance)))]
    hw = 0.5 * width
    if kind == "van":
        bot_x = (-0.5 * length, 0.5 * length - 0.35)
        top_x = (-0.5 * length, 0.5 * length - 0.9)
    else:
        hood = rng.uniform(0.22, 0.3) * length
        trunk = rng.uniform(0.1, 0.2) * length if kind == "sedan" else 0.05 * length
        bot_x = (-0.5 * length + trunk, 0.5 * length - hood)
        top_x = (bot_x[0] + 0.35, bot_x[1] - 0.55)
    tw = hw - 0.12
    cabin = np.array(
        [[bot_x[0], -hw, belt], [bot_x[1], -hw, belt], [bot_x[1], hw, belt], [bot_x[0], hw, belt],
         [top_x[0], -tw, height], [top_x[1], -tw, height], [top_x[1], tw, height], [top_x[0], tw, height]],
    )  # fmt: skip
    parts.append(hexahedron(cabin))
    axle = 0.5 * length - rng.uniform(0.75, 0.95)
    steer = math.radians(rng.uniform(-25.0, 25.0)) if rng.random() < 0.5 else 0.0
    for x in (axle, -axle):
        for y in (hw - 0.1, -hw + 0.1):
            rot = rotation_matrix(yaw=steer if x > 0 else 0.0)
            parts.append(cylinder(wheel_r, 0.22, center=(x, y, wheel_r), axis="y", segments=10, rotation=rot))
    if rng.random() < 0.1:  # an open front door
        ang = math.radians(rng.uniform(30.0, 70.0))
        side = 1.0 if rng.random() < 0.5 else -1.0
        door_len = 1.0
        hinge = np.array([0.15 * length, side * hw, 0.5 * (belt + clearance) + 0.15])
        c = hinge + 0.5 * door_len * np.array([-math.cos(ang), side * math.sin(ang), 0.0])
        parts.append(box((door_len, 0.06, belt - clearance + 0.3), center=c, rotation=rotation_matrix(yaw=-side * ang)))
    return merge(parts)


def make_cyclist(rng: np.random.Generator) -> TriMesh:
    """A rider on a bicycle: two wheels, frame tubes, a leaning torso, legs on cranks at a random angle."""
    wheel_r = rng.uniform(0.3, 0.36)
    base = rng.uniform(0.98, 1.1)
    fx, rx = 0.5 * base, -0.5 * base
    parts = [
        cylinder(wheel_r, 0.05, center=(fx, 0.0, wheel_r), axis="y", segments=14),
        cylinder(wheel_r, 0.05, center=(rx, 0.0, wheel_r), axis="y", segments=14),
    ]
    bb = np.array([-0.02, 0.0, wheel_r - 0.02])
    seat = np.array([rx + 0.25, 0.0, wheel_r + 0.62])
    head_tube = np.array([fx - 0.18, 0.0, wheel_r + 0.55])
    bar = head_tube + np.array([0.02, 0.0, 0.12])
    for a, b in ((bb, seat), (bb, head_tube), (seat, head_tube), (bb, (rx, 0.0, wheel_r)), (seat, (rx, 0.0, wheel_r))):
        parts.append(limb(a, b, 0.022, segments=6))
    parts.append(limb(head_tube, (fx, 0.0, wheel_r), 0.02, segments=6))
    parts.append(limb(bar + (0.0, -0.28, 0.0), bar + (0.0, 0.28, 0.0), 0.02, segments=6))
    # Rider: torso leaning forward from the saddle to the bars, legs to the pedals at the crank angle.
    h = rng.uniform(1.6, 1.9)
    lean = math.radians(rng.uniform(20.0, 55.0))
    crank = rng.uniform(0.0, 2.0 * np.pi)
    torso_len = 0.3 * h
    hip = seat + np.array([0.0, 0.0, 0.05])
    shoulder = hip + torso_len * np.array([math.sin(lean), 0.0, math.cos(lean)])
    mid = 0.5 * (hip + shoulder)
    parts.append(ellipsoid((0.1 * h, 0.12 * h, 0.5 * torso_len), center=mid, rotation=rotation_matrix(pitch=lean)))
    parts.append(ellipsoid((0.055 * h, 0.05 * h, 0.065 * h), center=shoulder + (0.06, 0.0, 0.13 * h), n_u=8, n_v=5))
    for side, phase in ((1.0, 0.0), (-1.0, np.pi)):
        pedal = bb + np.array([0.17 * math.cos(crank + phase), side * 0.12, 0.17 * math.sin(crank + phase)])
        knee = 0.5 * (hip + pedal) + np.array([0.2, 0.0, 0.08])
        parts.append(limb(hip + (0.0, side * 0.09, 0.0), knee, 0.06))
        parts.append(limb(knee, pedal, 0.045))
        parts.append(limb(shoulder + (0.0, side * 0.18, 0.0), bar + (0.0, side * 0.25, 0.0), 0.035))
    return merge(parts)


def make_wheelchair_user(rng: np.random.Generator) -> TriMesh:
    """A seated person in a manual wheelchair: big rear wheels, casters, seat, backrest; recline varies."""
    wheel_r = rng.uniform(0.28, 0.33)
    half = rng.uniform(0.3, 0.36)
    seat_z = rng.uniform(0.46, 0.52)
    parts = [
        cylinder(wheel_r, 0.04, center=(-0.1, half, wheel_r), axis="y", segments=14),
        cylinder(wheel_r, 0.04, center=(-0.1, -half, wheel_r), axis="y", segments=14),
        cylinder(0.07, 0.04, center=(0.35, half - 0.05, 0.07), axis="y", segments=8),
        cylinder(0.07, 0.04, center=(0.35, -half + 0.05, 0.07), axis="y", segments=8),
        box((0.45, 2 * half - 0.08, 0.05), center=(0.08, 0.0, seat_z)),
    ]
    recline = math.radians(rng.uniform(0.0, 20.0))
    back_c = np.array([-0.15 - 0.25 * math.sin(recline), 0.0, seat_z + 0.25 * math.cos(recline)])
    parts.append(box((0.04, 2 * half - 0.08, 0.5), center=back_c, rotation=rotation_matrix(pitch=-recline)))
    for y in (half - 0.04, -half + 0.04):
        parts.append(limb((0.3, y, seat_z), (0.35, y, 0.1), 0.015, segments=6))
    # Seated person: thighs forward, shins down, torso up, arms to the wheel rims.
    h = rng.uniform(1.55, 1.9)
    hip = np.array([-0.05, 0.0, seat_z + 0.08])
    for side in (1.0, -1.0):
        knee = np.array([0.33, side * 0.11, seat_z + 0.1])
        foot = np.array([0.4, side * 0.11, 0.1])
        parts.append(limb(hip + (0.0, side * 0.1, 0.0), knee, 0.065))
        parts.append(limb(knee, foot, 0.045))
    torso_len = 0.3 * h
    shoulder = hip + torso_len * np.array([-math.sin(recline) + 0.1, 0.0, math.cos(recline)])
    parts.append(
        ellipsoid(
            (0.11 * h, 0.12 * h, 0.5 * torso_len),
            center=0.5 * (hip + shoulder),
            rotation=rotation_matrix(pitch=-recline),
        )
    )
    parts.append(ellipsoid((0.055 * h, 0.05 * h, 0.065 * h), center=shoulder + (0.02, 0.0, 0.13 * h), n_u=8, n_v=5))
    for side in (1.0, -1.0):
        parts.append(limb(shoulder + (0.0, side * 0.19, 0.0), (0.0, side * (half - 0.06), seat_z + 0.05), 0.03))
    return merge(parts)


def make_cargo_pallet(rng: np.random.Generator) -> TriMesh:
    """A EUR pallet (1.2 x 0.8 m): empty, stacked empties, or carrying a stack of boxes / a wrapped load."""
    length, width, deck_h = 1.2, 0.8, 0.144
    if rng.random() < 0.5:
        length, width = width, length

    def pallet(z0: float) -> list[TriMesh]:
        ps = []
        for y in (-0.5 * width + 0.05, 0.0, 0.5 * width - 0.05):
            ps.append(box((length, 0.1, 0.078), center=(0.0, y, z0 + 0.039)))
        ps.append(box((length, width, 0.022), center=(0.0, 0.0, z0 + 0.078 + 0.011)))
        for x in (-0.5 * length + 0.05, 0.0, 0.5 * length - 0.05):
            ps.append(box((0.1, width, 0.044), center=(x, 0.0, z0 + deck_h - 0.022)))
        return ps

    mode = rng.choice(["boxes", "wrapped", "empty_stack"], p=[0.5, 0.3, 0.2])
    parts: list[TriMesh] = []
    if mode == "empty_stack":
        for i in range(int(rng.integers(1, 6))):
            parts += pallet(i * deck_h)
        return merge(parts)
    parts += pallet(0.0)
    if mode == "wrapped":
        load_h = rng.uniform(0.5, 1.6)
        parts.append(box((length - 0.04, width - 0.04, load_h), center=(0.0, 0.0, deck_h + 0.5 * load_h)))
        return merge(parts)
    z = deck_h
    for _ in range(int(rng.integers(1, 5))):
        bh = rng.uniform(0.2, 0.5)
        bl, bw = length * rng.uniform(0.5, 1.0), width * rng.uniform(0.5, 1.0)
        cx = rng.uniform(-0.5 * (length - bl), 0.5 * (length - bl))
        cy = rng.uniform(-0.5 * (width - bw), 0.5 * (width - bw))
        parts.append(
            box((bl, bw, bh), center=(cx, cy, z + 0.5 * bh), rotation=rotation_matrix(yaw=rng.uniform(-0.1, 0.1)))
        )
        z += bh
    return merge(parts)


# --------------------------------------------------------------------------------------------- background


def make_building(rng: np.random.Generator) -> TriMesh:
    """A building block 6-25 m wide, 3-15 m tall, sometimes with a lower annex."""
    sx, sy, sz = rng.uniform(6.0, 25.0), rng.uniform(6.0, 20.0), rng.uniform(3.0, 15.0)
    parts = [box((sx, sy, sz), center=(0.0, 0.0, 0.5 * sz - 0.5))]
    if rng.random() < 0.4:
        ax, ay, az = rng.uniform(3.0, 8.0), sy * rng.uniform(0.3, 0.8), rng.uniform(2.5, min(sz, 5.0))
        parts.append(box((ax, ay, az), center=(0.5 * sx + 0.5 * ax, 0.0, 0.5 * az - 0.5)))
    return merge(parts)


def make_pole(rng: np.random.Generator) -> TriMesh:
    """A street pole 3-9 m tall, sometimes carrying a sign."""
    r, h = rng.uniform(0.06, 0.18), rng.uniform(3.0, 9.0)
    parts = [cylinder(r, h + 0.3, center=(0.0, 0.0, 0.5 * h - 0.15), segments=8)]
    if rng.random() < 0.35:
        parts.append(box((0.04, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)), center=(0.0, 0.0, min(h, 2.8))))
    return merge(parts)


#: Relative per-vertex jitter of a tree crown's radii (an irregular crown).
_CROWN_JITTER = 0.18


def _tree(
    rng: np.random.Generator, trunk_radius: float, trunk_top: float, crown_radii: Sequence[float], crown_z: float
) -> TriMesh:
    """A trunk from 0.3 m below the ground to ``trunk_top`` and a jittered ellipsoid crown centred ``crown_z`` up;
    the crown's jitter is the only draw from ``rng`` (the callers draw the sizes, in their own order)."""
    trunk = cylinder(trunk_radius, trunk_top + 0.3, center=(0.0, 0.0, 0.5 * trunk_top - 0.15), segments=8)
    crown = ellipsoid(crown_radii, center=(0.0, 0.0, crown_z), n_u=12, n_v=8, jitter=_CROWN_JITTER, rng=rng)
    return merge([trunk, crown])


def make_vegetation(rng: np.random.Generator) -> TriMesh:
    """A tree (trunk + irregular crown) or a bush (irregular flattened ellipsoid)."""
    if rng.random() < 0.55:
        trunk_h, crown_r = rng.uniform(1.5, 4.0), rng.uniform(1.2, 3.5)
        trunk_r = rng.uniform(0.1, 0.3)
        radii = (crown_r, crown_r * rng.uniform(0.8, 1.2), crown_r * rng.uniform(0.8, 1.3))
        return _tree(rng, trunk_r, trunk_h, radii, trunk_h + 0.8 * crown_r)
    r = rng.uniform(0.5, 1.6)
    return ellipsoid((r, r * rng.uniform(0.7, 1.4), r * rng.uniform(0.5, 0.9)), n_u=10, n_v=6, jitter=0.2, rng=rng)


def make_street_tree(rng: np.random.Generator, clearance: float) -> TriMesh:
    """A sidewalk tree pruned for passers-by: a trunk and an irregular crown (the radii and jitter of
    :func:`make_vegetation`'s trees) whose lowest point lies at least ``clearance`` (up to about
    ``clearance + 4``) metres above the ground.

    Args:
        rng: the scene's generator.
        clearance: lowest crown point, metres above the ground (> 0).
    """
    crown_r = rng.uniform(1.2, 3.5)
    rz = crown_r * rng.uniform(0.8, 1.3)
    # the crown's jitter scales a vertex's radius by up to 1 + _CROWN_JITTER: the crown's centre sits that far up
    base = float(clearance) + rng.uniform(0.0, 2.0) + _CROWN_JITTER * rz
    trunk_r = rng.uniform(0.1, 0.3)
    # the trunk reaches the crown's centre, inside the crown
    return _tree(rng, trunk_r, base + rz, (crown_r, crown_r * rng.uniform(0.8, 1.2), rz), base + rz)


#: class name -> builder(rng) -> TriMesh in the object's local frame.
CLASS_BUILDERS: dict[str, Callable[[np.random.Generator], TriMesh]] = {
    "pedestrian": make_pedestrian,
    "vehicle": make_vehicle,
    "cyclist": make_cyclist,
    "wheelchair_user": make_wheelchair_user,
    "cargo_pallet": make_cargo_pallet,
    "building": make_building,
    "pole": make_pole,
    "vegetation": make_vegetation,
}
