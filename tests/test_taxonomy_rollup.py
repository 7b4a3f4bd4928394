"""Real classes rolled up to the taxonomy's head classes, so that synthetic classes meet real exemplars.

Issue 7: with fine real labels (SemanticKITTI car/truck, nuScenes road/sidewalk) every generated frame was rejected
with "class vehicle has no real reference" until a hand-written map was supplied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simgap_ext.data.taxonomy import class_id, roll_up_frame
from simgap_ext.frame import class_names, id_to_class, make_frame
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.realsets import iter_real_scans

DATA = Path(__file__).parent / "data" / "nuscenes"


def _frame():
    # car: 4 points of instance 1; truck: 3 points, ALSO instance 1 (ids are per class in some datasets);
    # road 2 points, sidewalk 1, a name the taxonomy does not know 2.
    sem = np.array([10, 10, 10, 10, 18, 18, 18, 40, 40, 48, 900, 900], np.uint32)
    inst = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], np.uint32)
    names = {10: "car", 18: "truck", 40: "road", 48: "sidewalk", 900: "my_prop"}
    pts = np.arange(36, dtype=np.float32).reshape(12, 3) + 1.0
    return make_frame(pts, sem, inst, names, sensor="hdl-64")


def test_roll_up_maps_fine_classes_onto_head_classes_by_hand():
    rolled = roll_up_frame(_frame())
    names = id_to_class(rolled)
    sem = rolled["info"]["pointSemantic"]
    per_point = [names[int(s)] for s in sem]
    assert per_point == ["vehicle"] * 7 + ["ground"] * 3 + ["my_prop"] * 2
    assert names[int(sem[0])] == "vehicle" and int(sem[0]) == class_id("vehicle")
    assert int(sem[7]) == class_id("ground")
    # the unknown name keeps its class on an id no taxonomy class uses
    assert int(sem[-1]) not in {class_id("vehicle"), class_id("ground")}
    # car instance 1 and truck instance 1 are two objects: they stay apart once both are "vehicle"
    inst = rolled["info"]["pointInstance"]
    assert len(set(inst[:4].tolist())) == 1 and len(set(inst[4:7].tolist())) == 1 and inst[0] != inst[4]
    assert (inst[7:] == 0).all()
    # points and metadata are shared, the input is untouched
    assert rolled["data"] is _frame()["data"] or np.array_equal(rolled["data"], _frame()["data"])
    assert class_names(_frame()) == ["car", "my_prop", "road", "sidewalk", "truck"]


@pytest.fixture(scope="module")
def real():
    return list(iter_real_scans(DATA))


def test_bank_is_built_at_scene_level_by_default_and_fine_on_request(real):
    raw = set().union(*(class_names(f) for _, f in real))
    assert {"car", "truck", "road", "sidewalk", "terrain", "other_structure"} <= raw  # the reader returns fine classes
    head = ReferenceBank.build(real, config=load_gate_config(), device="cpu")
    fine = ReferenceBank.build(real, config=load_gate_config(), device="cpu", class_level="fine")
    assert head.class_names == [
        "building",
        "ground",
        "pedestrian",
        "static_object",
        "unlabeled",
        "vegetation",
        "vehicle",
    ]
    assert set(fine.class_names) == raw
    assert head.meta["class_level"] == "scene" and fine.meta["class_level"] == "fine"
    with pytest.raises(Exception, match="class_level"):
        ReferenceBank.build(real, device="cpu", class_level="head")


def test_embedded_classes_meet_real_exemplars_without_a_label_map(real):
    from simgap_ext.backends import get_scene_source

    bank = ReferenceBank.build(real, config=load_gate_config(), device="cpu")
    gate = FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)
    frame = get_scene_source("warp", sensor="hdl-32", preset="realistic", device="cpu").render(seed=3, frame_id=0)
    decision = gate.evaluate(frame)
    assert not any("vehicle has no real reference" in r for r in decision.reasons)
    assert not any("ground has no real reference" in r for r in decision.reasons)
    assert gate.reference_class("vehicle") == "vehicle" and gate.reference_class("ground") == "ground"
    # a tail class finer than the head level is judged as its parent (the real scans hold pedestrians)
    assert gate.reference_class("wheelchair_user") == "pedestrian"
