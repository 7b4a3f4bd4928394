"""Procedural scene randomizer: ground, static clutter and class objects, deterministic from a seed.

:meth:`SceneRandomizer.sample` returns a :class:`Scene`: one triangle soup (everything concatenated, ready for a
single ``wp.Mesh``) with a per-triangle semantic and instance id, plus a record of every placed object.

Layout (all in a world frame with z up; the sensor stands at x = y = 0, ``sensor_height`` above the ground):

- ground: a square height field (``extent`` half-size) with a random slope up to ``max_slope_deg``, gentle
  long-wavelength undulation and per-vertex roughness;
- street (default, ``street=True``): the sensor drives in a lane of a straight street (road half-width 3.5-7 m)
  with raised sidewalks (2-4.5 m) and blocks behind them: building facades (setback 0-4 m, 5-20 m tall; 60 % of
  the blocks) or open lots with trees and bushes and a building 20-50 m back (what real urban scans show at the
  sensor's height: facades on 22-54 % of the horizon, vegetation on 15-41 %; ``benchmarks/bench_world.py``),
  street trees and poles along the curb, rows of parked cars on both curbs (occupancy ~60 %, so
  parked cars hide each other and what is behind them) and moving traffic in the lanes out to 90 % of the
  sensor range (tags ``"parked"`` / ``"traffic"``). The distances follow what real urban scans show (nuScenes
  Boston/Singapore keyframes: facades at a median 19 m, vegetation 9-16 m, parked cars from 2.7 m). Class
  objects are placed inside the street corridor (road + sidewalks), never inside a facade;
- open layout (``street=False``): background clutter, buildings (25-70 m), poles and vegetation around the sensor;
- class objects (pedestrian, vehicle, cyclist, wheelchair_user, cargo_pallet) at ``object_range`` (5-40 m by
  default) with random dimensions, articulation and heading; vehicles mostly follow a random road direction.
  Objects never intersect each other (footprint discs), so occlusion arises only from line of sight.

Focus and rare configurations (tail-class generation):

- ``focus_classes``: each named class gets ``focus_extra`` (2-4) extra instances on top of the base counts;
- ``rare="occluded"``: each targeted object gets an occluder (a vehicle or a bush) placed between it and the
  sensor, covering part of it;
- ``rare="far"``: targeted objects are placed at ``far_range`` (40-70 m, capped below the sensor's max range);
- ``rare="adverse_pose"``: targeted objects are lying or strongly tilted (a fallen cyclist, a person lying on
  the ground, a tipped pallet, a vehicle on its side), resting on the ground.

Targeted objects are the instances of the focus classes, or every class object when no focus is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import SimGapInputError
from ...sensors import ReadOnlyMapping
from .labels import CLASS_IDS, OBJECT_CLASSES, PENETRATION_MEAN
from .meshes import CLASS_BUILDERS, TriMesh, box, make_street_tree, make_vegetation, make_vehicle, rotation_matrix

__all__ = ["RARE_MODES", "RandomizerConfig", "SceneObject", "Scene", "SceneRandomizer", "StreetBlock"]

#: Accepted values of ``rare``.
RARE_MODES: tuple[str | None, ...] = (None, "occluded", "far", "adverse_pose")


@dataclass(frozen=True)
class RandomizerConfig:
    """Knobs of :class:`SceneRandomizer` (defaults give a suburban street scene).

    Attributes:
        extent: half-size of the square ground patch, metres.
        ground_cell: ground grid spacing, metres.
        max_slope_deg: largest ground slope.
        roughness: per-vertex ground height noise (1 sigma), metres.
        undulation: amplitude of long-wavelength ground undulation, metres.
        object_range: (min, max) horizontal distance of class objects, metres.
        far_range: (min, max) distance for ``rare="far"``, metres.
        base_counts: class -> (min, max) instances per scene (inclusive) before focus extras.
        focus_extra: (min, max) extra instances per focus class.
        buildings, poles, vegetation: (min, max) counts of background clutter (open layout).
        street: street layout (see the module docstring) instead of the open layout.
        road_half_width: (min, max) half-width of the carriageway, metres.
        sidewalk_width: (min, max) sidewalk width, metres.
        facade_setback: (min, max) distance from the sidewalk's outer edge to the facades, metres.
        parked_occupancy: share of parking slots along each curb holding a car.
        facade_occupancy: share of the blocks along each street side that hold a facade; the others are open lots
            (yards, parks, car parks) with trees and bushes.
        lot_vegetation: (min, max) spacing, metres, of the trees and bushes planted on an open lot (``(0, 0)``:
            none).
        lot_depth: (min, max) depth of an open lot, metres: a building stands that far behind the sidewalk
            (``(0, 0)``: none; with ``lot_vegetation=(0, 0)`` too, a block without a facade is empty, as in the
            street world before open lots).
        tree_occupancy: share of the street-tree slots on the sidewalks holding a tree.
        street_tree_clearance: 0 (default): a street-tree slot holds a tree or a bush, as an open lot does; > 0:
            trees only, crowns pruned to at least this height above the ground, metres (2.4: the 8 ft that
            municipal codes ask over a sidewalk). Measured against real vegetation, not adopted:
            ``benchmarks/vegetation_breakdown.py``, docs/backend.md "Issue 10, eleventh pass".
        traffic: (min, max) moving vehicles in the lanes.
        penetration: class -> mean depth (metres) a beam travels into that material before it returns
            (:mod:`.foliage`; default ``PENETRATION_MEAN``, the measured volumetric foliage: 0.3 m into
            ``vegetation``; ``{}`` makes every surface opaque, the smooth hulls of earlier versions).
    """

    extent: float = 80.0
    ground_cell: float = 2.5
    max_slope_deg: float = 3.0
    roughness: float = 0.02
    undulation: float = 0.25
    object_range: tuple[float, float] = (5.0, 40.0)
    far_range: tuple[float, float] = (40.0, 70.0)
    base_counts: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: ReadOnlyMapping(
            {
                "pedestrian": (1, 3),
                "vehicle": (2, 4),
                "cyclist": (0, 1),
                "wheelchair_user": (0, 1),
                "cargo_pallet": (0, 2),
            }
        )
    )
    focus_extra: tuple[int, int] = (2, 4)
    buildings: tuple[int, int] = (2, 6)
    poles: tuple[int, int] = (3, 10)
    vegetation: tuple[int, int] = (4, 12)
    street: bool = True
    road_half_width: tuple[float, float] = (3.5, 7.0)
    sidewalk_width: tuple[float, float] = (2.0, 4.5)
    facade_setback: tuple[float, float] = (0.0, 4.0)
    parked_occupancy: float = 0.6
    facade_occupancy: float = 0.6
    lot_vegetation: tuple[float, float] = (4.0, 8.0)
    lot_depth: tuple[float, float] = (20.0, 50.0)
    tree_occupancy: float = 1.0
    street_tree_clearance: float = 0.0
    traffic: tuple[int, int] = (2, 8)
    penetration: Mapping[str, float] = field(default_factory=lambda: ReadOnlyMapping(dict(PENETRATION_MEAN)))

    def __post_init__(self) -> None:
        for name in ("parked_occupancy", "facade_occupancy", "tree_occupancy"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise SimGapInputError(f"RandomizerConfig.{name} must be a share in [0, 1], got {v!r}")
        c = self.street_tree_clearance
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0.0):
            raise SimGapInputError(f"RandomizerConfig.street_tree_clearance must be a finite height >= 0 m, got {c!r}")
        for name in ("lot_vegetation", "lot_depth"):
            lo, hi = getattr(self, name)
            if not (0.0 <= lo <= hi) or (0.0 < hi and lo <= 0.0):
                raise SimGapInputError(f"RandomizerConfig.{name} must be (min, max) with 0 < min <= max, or (0, 0)")


@dataclass(frozen=True)
class SceneObject:
    """One placed object.

    Attributes:
        instance_id: per-frame instance id (0 for background classes).
        class_name: class name (see :mod:`.labels`).
        semantic_id: semantic id of the class.
        position: (3,) float64 world position of the object's ground contact point, metres.
        yaw: heading, radians.
        distance: horizontal distance from the sensor, metres.
        tags: rare-configuration tags applied (``"occluded"``, ``"occluder"``, ``"far"``, ``"adverse_pose"``,
            ``"focus"``).
    """

    instance_id: int
    class_name: str
    semantic_id: int
    position: tuple[float, float, float]
    yaw: float
    distance: float
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreetBlock:
    """One block along a side of the street layout (road frame: ``u`` along the road, ``v`` lateral from the road
    centre line, positive to the road's left).

    Attributes:
        side: +1.0 or -1.0, the side of the road.
        u0, u1: along-road extent, metres.
        kind: ``"facade"`` (a building front behind the sidewalk) or ``"lot"`` (open lot: trees, bushes and a
            building at its back, or nothing).
        front: |v| of the building front facing the road, metres (NaN for a lot without a building).
        edge: |v| of the sidewalk's outer edge, metres.
    """

    side: float
    u0: float
    u1: float
    kind: str
    front: float
    edge: float


@dataclass
class Scene:
    """A randomized scene as one labelled triangle soup.

    Attributes:
        vertices: (V, 3) float32 world positions, metres.
        faces: (F, 3) int32 vertex indices.
        face_semantic: (F,) uint32 semantic id per triangle.
        face_instance: (F,) uint32 instance id per triangle (0 for background).
        objects: placed objects (background included), in placement order.
        sensor_origin: (3,) float32 world position of the sensor.
        seed: the seed the scene was sampled with (an int, or the SeedSequence entropy).
        focus_classes: the classes the randomizer was asked to emphasise.
        rare: the rare configuration applied, or ``None``.
        road: street layout only: ``(road_yaw, lateral offset of the road centre line)`` (world ``(x, y)`` of the
            road-frame point ``(u, v)`` is ``u (cos yaw, sin yaw) + (v + offset) (-sin yaw, cos yaw)``); ``None``
            for the open layout.
        blocks: street layout only: the blocks along both sides (:class:`StreetBlock`).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_semantic: np.ndarray
    face_instance: np.ndarray
    objects: list[SceneObject]
    sensor_origin: np.ndarray
    seed: object = 0
    focus_classes: tuple[str, ...] = ()
    rare: str | None = None
    road: tuple[float, float] | None = None
    blocks: list[StreetBlock] = field(default_factory=list)

    def instances_of(self, class_name: str) -> list[SceneObject]:
        """The placed objects of one class."""
        return [o for o in self.objects if o.class_name == class_name]


class _Ground:
    """Smooth ground height z(x, y) plus a triangulated, roughened grid of it."""

    def __init__(self, rng: np.random.Generator, cfg: RandomizerConfig) -> None:
        slope = math.tan(math.radians(rng.uniform(0.0, cfg.max_slope_deg)))
        direction = rng.uniform(0.0, 2.0 * np.pi)
        self.gx, self.gy = slope * math.cos(direction), slope * math.sin(direction)
        n_waves = 3
        self.k = rng.uniform(2 * np.pi / 60.0, 2 * np.pi / 15.0, size=n_waves)
        self.dirs = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        self.phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        self.amp = cfg.undulation * rng.uniform(0.2, 1.0, size=n_waves) / n_waves
        n = max(2, int(round(2 * cfg.extent / cfg.ground_cell)) + 1)
        xs = np.linspace(-cfg.extent, cfg.extent, n)
        gx, gy = np.meshgrid(xs, xs, indexing="ij")
        gz = self.height(gx, gy) + rng.normal(0.0, cfg.roughness, size=gx.shape)
        verts = np.stack([gx, gy, gz], axis=-1).reshape(-1, 3)
        idx = np.arange(n * n).reshape(n, n)
        a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]
        faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
        self.mesh = TriMesh(verts, faces.astype(np.int64))

    def height(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        """Smooth ground height at (x, y) (no per-vertex roughness)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        z = self.gx * x + self.gy * y
        for k, d, p, a in zip(self.k, self.dirs, self.phase, self.amp, strict=True):
            z = z + a * np.sin(k * (math.cos(d) * x + math.sin(d) * y) + p)
        return z


class SceneRandomizer:
    """Samples :class:`Scene` objects deterministically from a seed.

    Args:
        config: randomizer knobs (default :class:`RandomizerConfig`).
        sensor_height: sensor height above the ground at the origin, metres.
        max_range: the sensor's max range; ``far`` placements stay below 90 % of it.
    """

    def __init__(
        self, config: RandomizerConfig | None = None, *, sensor_height: float = 1.73, max_range: float = 120.0
    ) -> None:
        self.config = config or RandomizerConfig()
        self.sensor_height = float(sensor_height)
        self.max_range = float(max_range)

    @property
    def class_names(self) -> list[str]:
        """The object classes this randomizer places."""
        return list(OBJECT_CLASSES)

    def sample(
        self,
        seed: int | np.random.SeedSequence,
        focus_classes: Sequence[str] = (),
        rare: str | None = None,
    ) -> Scene:
        """Sample one scene.

        Args:
            seed: an int or a ``np.random.SeedSequence``; the same seed gives the same scene.
            focus_classes: object classes that get 2-4 extra instances (tail-class generation).
            rare: ``None``, ``"occluded"``, ``"far"`` or ``"adverse_pose"`` (see the module docstring).

        Returns:
            The scene.

        Raises:
            SimGapInputError: an unknown focus class or rare mode.
        """
        if isinstance(focus_classes, str):  # a bare class name, not its characters
            focus_classes = (focus_classes,)
        focus = tuple(dict.fromkeys(focus_classes))
        unknown = [c for c in focus if c not in OBJECT_CLASSES]
        if unknown:
            raise SimGapInputError(f"unknown focus class(es) {unknown} (known: {', '.join(OBJECT_CLASSES)})")
        if rare not in RARE_MODES:
            raise SimGapInputError(f"unknown rare configuration {rare!r} (known: {RARE_MODES})")
        cfg = self.config
        rng = np.random.default_rng(seed)
        ground = _Ground(rng, cfg)
        builder = _SceneBuilder(ground)
        builder.add_stuff(ground.mesh, "ground")
        origin = np.array([0.0, 0.0, float(ground.height(0.0, 0.0)) + self.sensor_height], dtype=np.float32)

        road_yaw = rng.uniform(0.0, np.pi)
        # Background first: it claims space the objects must avoid.
        if cfg.street:
            _build_street(rng, builder, cfg, road_yaw, self.max_range)
        else:
            for _ in range(int(rng.integers(cfg.buildings[0], cfg.buildings[1] + 1))):
                builder.place(rng, "building", (25.0, min(70.0, cfg.extent - 10.0)), instance=False)
            for _ in range(int(rng.integers(cfg.poles[0], cfg.poles[1] + 1))):
                builder.place(rng, "pole", (4.0, 50.0), instance=False)
            for _ in range(int(rng.integers(cfg.vegetation[0], cfg.vegetation[1] + 1))):
                builder.place(rng, "vegetation", (8.0, 60.0), instance=False)
        far_lo = min(cfg.far_range[0], 0.6 * self.max_range)
        far_hi = min(cfg.far_range[1], 0.9 * self.max_range, cfg.extent - 5.0)
        for cls in OBJECT_CLASSES:
            lo, hi = cfg.base_counts.get(cls, (0, 0))
            n = int(rng.integers(lo, hi + 1))
            extra = int(rng.integers(cfg.focus_extra[0], cfg.focus_extra[1] + 1)) if cls in focus else 0
            for i in range(n + extra):
                targeted = rare is not None and (cls in focus if focus else True)
                tags = ["focus"] if (cls in focus and i >= n) else []
                rng_range = (far_lo, far_hi) if (targeted and rare == "far") else cfg.object_range
                pose = "adverse" if (targeted and rare == "adverse_pose") else "normal"
                if targeted:
                    tags.append(rare)
                placed = builder.place(rng, cls, rng_range, instance=True, road_yaw=road_yaw, pose=pose, tags=tags)
                if placed is not None and targeted and rare == "occluded":
                    builder.place_occluder(rng, placed)
        mesh_v, mesh_f, sem, inst = builder.arrays()
        return Scene(
            vertices=mesh_v,
            faces=mesh_f,
            face_semantic=sem,
            face_instance=inst,
            objects=builder.objects,
            sensor_origin=origin,
            seed=seed if isinstance(seed, int) else getattr(seed, "entropy", seed),
            focus_classes=focus,
            rare=rare,
            road=builder.road,
            blocks=builder.blocks,
        )


def _build_street(
    rng: np.random.Generator, builder: _SceneBuilder, cfg: RandomizerConfig, road_yaw: float, max_range: float
) -> None:
    """Road, sidewalks, facades, street trees, poles, parked rows and traffic (see the module docstring)."""
    ux, uy = math.cos(road_yaw), math.sin(road_yaw)
    half = rng.uniform(*cfg.road_half_width)
    walk = rng.uniform(*cfg.sidewalk_width)
    off = rng.uniform(-0.5 * half, 0.5 * half)  # the sensor's lane: lateral offset of the road centre line
    reach = cfg.extent - 2.0
    rot = rotation_matrix(yaw=road_yaw)
    ground = builder.ground

    def world(u: float, v: float) -> tuple[float, float]:
        # along-road u, lateral v (from the road centre line) -> world x, y
        lat = v + off
        return u * ux - lat * uy, u * uy + lat * ux

    # sidewalks: 0.12 m curbs in 10 m segments following the ground height
    for side in (1.0, -1.0):
        v = side * (half + 0.5 * walk)
        for u in np.arange(-reach, reach, 10.0) + 5.0:
            x, y = world(float(u), v)
            z = float(ground.height(x, y))
            builder.add_stuff(box((10.0, walk, 0.3), center=(x, y, z - 0.03), rotation=rot), "ground")
    builder.corridor = (ux, uy, off, half + walk)
    builder.road = (float(road_yaw), float(off))
    # facades: blocks with gaps behind each sidewalk
    for side in (1.0, -1.0):
        u = -reach
        while u < reach:
            length = rng.uniform(10.0, 40.0)
            if rng.random() < cfg.facade_occupancy:
                depth, height = rng.uniform(8.0, 15.0), rng.uniform(5.0, 20.0)
                front = half + walk + rng.uniform(*cfg.facade_setback)
                v = side * (front + 0.5 * depth)
                builder.blocks.append(StreetBlock(side, u, min(u + length, reach), "facade", front, half + walk))
                _add_building(builder, world(min(u + 0.5 * length, reach), v), rot, (length, depth, height))
            else:
                _open_lot(rng, builder, cfg, world, rot, (u, min(u + length, reach)), side * (half + walk))
            u += length + (rng.uniform(2.0, 10.0) if rng.random() < 0.3 else 0.0)
    # street trees and poles on the sidewalks, parked cars along both curbs
    for side in (1.0, -1.0):
        for u in np.arange(-reach, reach, rng.uniform(8.0, 15.0)):
            if rng.random() < cfg.tree_occupancy:
                # pruned street trees only when asked: the default world's slots hold trees and bushes alike
                tree = make_street_tree(rng, cfg.street_tree_clearance) if cfg.street_tree_clearance > 0 else None
                builder.place(rng, "vegetation", (0, 0), instance=False, at=world(float(u), side * (half + 0.6 * walk)),
                              mesh=tree)  # fmt: skip
        for u in np.arange(-reach, reach, rng.uniform(20.0, 35.0)):
            builder.place(rng, "pole", (0, 0), instance=False, at=world(float(u) + 3.0, side * (half + 0.3)))
        u = -reach
        while u < reach:
            mesh = make_vehicle(rng)
            length = float(np.ptp(mesh.vertices[:, 0]))
            if rng.random() < cfg.parked_occupancy:
                yaw = road_yaw + (0.0 if side > 0 else np.pi) + rng.normal(0.0, 0.03)
                v = side * (half - 1.05 + rng.normal(0.0, 0.1))
                builder.place(
                    rng, "vehicle", (0, 0), instance=True, at=world(u, v), mesh=mesh, yaw=yaw, tags=("parked",)
                )
            u += length + rng.uniform(0.6, 2.5)
    # moving traffic in the lanes, out to 90 % of the sensor range
    lim = min(0.9 * max_range, reach)
    for _ in range(int(rng.integers(cfg.traffic[0], cfg.traffic[1] + 1))):
        side = 1.0 if rng.random() < 0.5 else -1.0
        u = rng.uniform(-lim, lim)
        if abs(u) < 6.0:
            continue
        v = side * rng.uniform(0.3, 0.5) * (half - 2.2) + side * 1.2
        yaw = road_yaw + (0.0 if side > 0 else np.pi) + rng.normal(0.0, 0.03)
        builder.place(rng, "vehicle", (0, 0), instance=True, at=world(u, v), mesh=make_vehicle(rng), yaw=yaw,
                      tags=("traffic",))  # fmt: skip


def _open_lot(
    rng: np.random.Generator,
    builder: _SceneBuilder,
    cfg: RandomizerConfig,
    world: Callable[[float, float], tuple[float, float]],
    rot: np.ndarray,
    span: tuple[float, float],
    edge: float,
) -> None:
    """A block without a street facade (yard, park, car park): trees and bushes one every ``cfg.lot_vegetation``
    metres along the road, 2 m into the lot up to its depth, and a building at the back (``cfg.lot_depth`` behind
    the sidewalk's outer edge ``edge``, a signed lateral offset) along the along-road ``span`` (u0, u1)."""
    side = 1.0 if edge > 0 else -1.0
    lot = rng.uniform(*cfg.lot_depth) if cfg.lot_depth[1] > 0 else 15.0
    if cfg.lot_vegetation[1] > 0:
        u = span[0] + rng.uniform(0.0, cfg.lot_vegetation[0])
        while u < span[1]:
            v = edge + side * rng.uniform(2.0, max(2.5, lot - 2.0))
            builder.place(rng, "vegetation", (0, 0), instance=False, at=world(float(u), float(v)))
            u += rng.uniform(*cfg.lot_vegetation)
    if cfg.lot_depth[1] <= 0:
        builder.blocks.append(StreetBlock(side, span[0], span[1], "lot", math.nan, abs(edge)))
        return
    builder.blocks.append(StreetBlock(side, span[0], span[1], "lot", abs(edge) + lot, abs(edge)))
    depth, height = rng.uniform(8.0, 15.0), rng.uniform(5.0, 20.0)
    centre = world(0.5 * (span[0] + span[1]), edge + side * (lot + 0.5 * depth))
    _add_building(builder, centre, rot, (span[1] - span[0], depth, height))


def _add_building(
    builder: _SceneBuilder, centre: tuple[float, float], rot: np.ndarray, size: tuple[float, float, float]
) -> None:
    """A ``building`` box of ``size`` (along the road, across it, height above the ground) at world ``centre``,
    its base sunk 1 m into the ground so that a slope never shows a gap beneath it."""
    length, depth, height = size
    x, y = centre
    z = float(builder.ground.height(x, y))
    builder.add_stuff(
        box((length, depth, height + 1.0), center=(x, y, z + 0.5 * height - 0.5), rotation=rot), "building"
    )


class _SceneBuilder:
    """Accumulates labelled meshes and footprint discs for collision-free placement."""

    def __init__(self, ground: _Ground) -> None:
        self.ground = ground
        self.parts: list[TriMesh] = []
        self.sem: list[np.ndarray] = []
        self.inst: list[np.ndarray] = []
        self.discs: list[tuple[float, float, float]] = [(0.0, 0.0, 2.5)]  # keep the sensor's surroundings free
        self.objects: list[SceneObject] = []
        self.next_instance = 1
        # street corridor: (road direction unit vector, lateral offset of the centre line, half-width); random
        # placements stay inside it so that no object stands inside a facade
        self.corridor: tuple[float, float, float, float] | None = None
        self.road: tuple[float, float] | None = None
        self.blocks: list[StreetBlock] = []

    def in_corridor(self, x: float, y: float, r: float) -> bool:
        if self.corridor is None:
            return True
        ux, uy, off, half = self.corridor
        lateral = -uy * x + ux * y - off
        return abs(lateral) + r <= half

    def add_stuff(self, mesh: TriMesh, cls: str) -> None:
        self._add(mesh, cls, 0)

    def _add(self, mesh: TriMesh, cls: str, instance_id: int) -> None:
        self.parts.append(mesh)
        self.sem.append(np.full(mesh.n_faces, CLASS_IDS[cls], dtype=np.uint32))
        self.inst.append(np.full(mesh.n_faces, instance_id, dtype=np.uint32))

    def _free(self, x: float, y: float, r: float) -> bool:
        return all((x - cx) ** 2 + (y - cy) ** 2 >= (r + cr) ** 2 for cx, cy, cr in self.discs)

    def place(
        self,
        rng: np.random.Generator,
        cls: str,
        dist_range: tuple[float, float],
        *,
        instance: bool,
        road_yaw: float = 0.0,
        pose: str = "normal",
        tags: Sequence[str] = (),
        at: tuple[float, float] | None = None,
        mesh: TriMesh | None = None,
        yaw: float | None = None,
    ) -> SceneObject | None:
        """Build and place one object; returns ``None`` when no free spot was found."""
        local = mesh if mesh is not None else CLASS_BUILDERS[cls](rng)
        if yaw is None:
            if cls == "vehicle" and rng.random() < 0.8:
                yaw = road_yaw + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0.0, 0.05)
            else:
                yaw = rng.uniform(0.0, 2.0 * np.pi)
        pitch = roll = 0.0
        if pose == "adverse":
            if rng.random() < 0.7:  # lying on a side / fallen over
                roll = (np.pi / 2) * (1 if rng.random() < 0.5 else -1)
            else:  # strongly tilted
                pitch = math.radians(rng.uniform(20.0, 45.0)) * (1 if rng.random() < 0.5 else -1)
                roll = math.radians(rng.uniform(-20.0, 20.0))
        rot = rotation_matrix(yaw=float(yaw), pitch=pitch, roll=roll)
        v = local.vertices @ rot.T
        v[:, 2] -= v[:, 2].min()  # rest on the ground after any tilt
        radius = float(np.max(np.linalg.norm(v[:, :2], axis=1))) + 0.1
        for _ in range(40 if self.corridor is None or at is not None else 400):
            if at is not None:
                x, y = at
            else:
                d = rng.uniform(*dist_range)
                az = rng.uniform(0.0, 2.0 * np.pi)
                x, y = d * math.cos(az), d * math.sin(az)
                if not self.in_corridor(x, y, radius):
                    continue
            if self._free(x, y, radius):
                break
            if at is not None:
                return None
        else:
            return None
        z = float(self.ground.height(x, y)) - 0.03  # sink slightly so roughness never shows a gap underneath
        placed = TriMesh(v + np.array([x, y, z]), local.faces)
        inst_id = 0
        if instance:
            inst_id = self.next_instance
            self.next_instance += 1
        self._add(placed, cls, inst_id)
        self.discs.append((x, y, radius))
        obj = SceneObject(
            instance_id=inst_id,
            class_name=cls,
            semantic_id=CLASS_IDS[cls],
            position=(float(x), float(y), z),
            yaw=float(yaw) % (2.0 * np.pi),
            distance=float(math.hypot(x, y)),
            tags=tuple(tags),
        )
        self.objects.append(obj)
        return obj

    def place_occluder(self, rng: np.random.Generator, target: SceneObject) -> SceneObject | None:
        """Put a vehicle or bush between the sensor and ``target`` so that it covers part of it."""
        tx, ty = target.position[0], target.position[1]
        for attempt in range(30):
            frac = rng.uniform(0.4, 0.8)
            lateral = rng.uniform(-0.8, 0.8)
            # Shift sideways (perpendicular to the line of sight) so the occluder hides only part of the target.
            px, py = -ty / target.distance, tx / target.distance
            x, y = frac * tx + lateral * px, frac * ty + lateral * py
            if math.hypot(x, y) < 3.0:
                continue
            # A parked vehicle is the common occluder; near targets leave room only for a bush.
            if attempt < 15 and rng.random() < 0.6:
                cls, mesh, inst = "vehicle", make_vehicle(rng), True
            else:
                cls, mesh, inst = "vegetation", make_vegetation(rng), False
            obj = self.place(rng, cls, (0, 0), instance=inst, at=(x, y), mesh=mesh, tags=("occluder",))
            if obj is not None:
                return obj
        return None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(V, 3) float32 vertices, (F, 3) int32 faces, (F,) uint32 semantic, (F,) uint32 instance."""
        verts, faces, base = [], [], 0
        for p in self.parts:
            verts.append(p.vertices)
            faces.append(p.faces + base)
            base += p.vertices.shape[0]
        return (
            np.concatenate(verts).astype(np.float32),
            np.concatenate(faces).astype(np.int32),
            np.concatenate(self.sem),
            np.concatenate(self.inst),
        )
