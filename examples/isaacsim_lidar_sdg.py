"""Gate Isaac Sim RTX LiDAR (or depth-camera) synthetic data with SimGap, standalone and headless.

Run with Isaac Sim's Python (it cannot run elsewhere)::

    ./python.sh examples/isaacsim_lidar_sdg.py --bank bank.npz --out simgap_out --frames 20
    ./python.sh examples/isaacsim_lidar_sdg.py --bank bank.npz --out simgap_cam --camera   # pointcloud variant
    # pip install isaacsim[all]==5.1.0 ...: `python examples/isaacsim_lidar_sdg.py ...` works the same way

``bank.npz`` comes from real scans: ``simgap reference build --real <scans> --sensor os1-128 --out bank.npz``.
SimGap must be importable (``pip install -e <this repository>`` into Isaac Sim's Python, or PYTHONPATH).

API sources followed (isaac-sim/IsaacSim): ``SimulationApp({"headless": True, "extra_args":
["--/rtx-transient/stableIds/enabled=true"]})`` and ``Lidar.create(..., aux_output_level="FULL")`` from
``source/standalone_examples/api/isaacsim.sensors.experimental.rtx/resolve_lidar_object_ids.py`` (v6.0.1);
``IsaacSensorCreateRtxLidar`` (config / variant / ``omni:sensor:Core:auxOutputType``) from
``isaacsim.sensors.rtx/python/impl/commands.py`` and ``resolve_object_ids_from_gmo.py`` (v5.1.0); render products
with ``render_vars=["GenericModelOutput", "RtxSensorMetadata"]`` from ``isaacsim.sensors.rtx/python/tests/
test_annotators.py`` (v5.1.0); Replicator's ``orchestrator.step`` / ``wait_until_complete`` and
``trigger.on_custom_event`` as in Isaac Sim's SDG tutorials.
"""

from __future__ import annotations

import argparse

from isaacsim import SimulationApp

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--bank", required=True, help="reference bank (simgap reference build)")
parser.add_argument("--out", default="simgap_out", help="export folder")
parser.add_argument("--frames", type=int, default=20, help="frames to step")
parser.add_argument("--camera", action="store_true", help="depth camera + pointcloud annotator instead of RTX LiDAR")
args, _ = parser.parse_known_args()

# StableIdMap (5.1+ / 6.x object ids) is empty unless Kit starts with this setting.
app = SimulationApp({"headless": True, "extra_args": ["--/rtx-transient/stableIds/enabled=true"]})

import numpy as np  # noqa: E402 - Kit modules exist only once SimulationApp runs
import omni.kit.commands  # noqa: E402
import omni.replicator.core as rep  # noqa: E402
import omni.timeline  # noqa: E402
from pxr import Gf  # noqa: E402
from rich.console import Console  # noqa: E402

from simgap_ext.pipeline.live import render_class_table  # noqa: E402
from simgap_ext.replicator.adapters import parse_isaac_version  # noqa: E402
from simgap_ext.replicator.rtx_settings import AUX_OUTPUT_ATTR, detect_isaac_version  # noqa: E402
from simgap_ext.replicator.writer import WRITER_NAME, register_writer  # noqa: E402

EVENT = "simgap_rerandomize"
VERSION = detect_isaac_version() or "6.0"
OS1_128 = "OS1_REV6_128ch10hz1024res"  # Ouster OS1-128, the sensor profile config/sensors/os1-128.toml describes


def build_scene() -> None:
    """Ground, walls and a few labelled objects; the custom event and every frame move the objects."""
    rep.create.plane(scale=50, semantics=[("class", "road")])
    rep.create.cube(position=(0, 15, 2), scale=(30, 0.5, 4), semantics=[("class", "building")])
    cars = rep.create.cube(count=4, scale=(4.5, 1.8, 1.5), semantics=[("class", "car")])
    people = rep.create.cylinder(count=6, scale=(0.5, 0.5, 1.8), semantics=[("class", "person")])

    def move() -> None:
        with cars:
            rep.modify.pose(position=rep.distribution.uniform((-12, -8, 0.75), (12, 8, 0.75)))
        with people:
            rep.modify.pose(position=rep.distribution.uniform((-10, -10, 0.9), (10, 10, 0.9)))

    with rep.trigger.on_frame():
        move()
    with rep.trigger.on_custom_event(event_name=EVENT):  # SimGapWriter fires it for a rejected tail-class scene
        move()


def create_lidar_render_product() -> str:
    """An OS1-128-like RTX LiDAR with object ids enabled (aux output FULL), for the running Isaac Sim."""
    if parse_isaac_version(VERSION) >= (6, 0):
        from isaacsim.sensors.experimental.rtx import Lidar

        lidar = Lidar.create(
            "/World/lidar", config=OS1_128, translations=np.array([[0.0, 0.0, 1.8]]), aux_output_level="FULL"
        )
        path = lidar.paths[0]
    else:  # 4.5 / 5.x: the command (5.x authors the OmniLidar attribute from the keyword)
        extra = {} if parse_isaac_version(VERSION) < (5, 0) else {AUX_OUTPUT_ATTR: "FULL"}
        _, prim = omni.kit.commands.execute(
            "IsaacSensorCreateRtxLidar",
            path="/World/lidar",
            config="OS1",
            variant=OS1_128,
            translation=Gf.Vec3d(0, 0, 1.8),
            **extra,
        )
        path = str(prim.GetPath())
    rp = rep.create.render_product(path, [1, 1], render_vars=["GenericModelOutput", "RtxSensorMetadata"])
    return rp.path


def main() -> None:
    build_scene()
    if args.camera:
        camera = rep.create.camera(position=(0, -20, 6), look_at=(0, 0, 0))
        render_product = rep.create.render_product(camera, (640, 480)).path
        annotator = "pointcloud"
    else:
        render_product = create_lidar_render_product()
        annotator = "auto"  # IsaacCreateRTXLidarScanBuffer (4.5 / 5.x) or GenericModelOutput (6.x): full scans
    register_writer()
    writer = rep.WriterRegistry.get(WRITER_NAME)
    writer.initialize(
        output_dir=args.out,
        bank_path=args.bank,
        annotator=annotator,
        sensor="os1-128",
        rerandomize_event=EVENT,
        max_retries=2,
    )
    writer.attach([render_product])  # raises, naming the fix, when RTX object ids cannot arrive
    rep.orchestrator.set_capture_on_play(False)
    timeline = omni.timeline.get_timeline_interface()
    timeline.play()  # RTX sensors only produce data while the timeline plays
    for _ in range(args.frames):
        rep.orchestrator.step(rt_subframes=4, pause_timeline=False)
    rep.orchestrator.wait_until_complete()
    writer.wait_until_idle()
    writer.detach()
    timeline.stop()
    Console().print(render_class_table(writer.stats, title=f"SimGap acceptance ({annotator}, Isaac Sim {VERSION})"))
    print(f"frames skipped: {writer.skipped}; export: {args.out}")


try:
    main()
finally:
    app.close()
