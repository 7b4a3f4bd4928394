"""The class taxonomy and the shipped dataset label maps (config/taxonomy.yaml, config/label_maps/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simgap_ext.backends.warp import labels as warp_labels
from simgap_ext.data import taxonomy as tx
from simgap_ext.data.dataset_label_maps import available_label_maps, load_label_map
from simgap_ext.errors import SimGapInputError

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent.parent / "shared" / "realdata"
if not REALDATA.is_dir():
    REALDATA = Path("/work/shared/realdata")

# Every id of each dataset, written out independently of the YAML files (from each dataset's documentation).
DATASET_IDS = {
    "semantickitti": {0, 1, 10, 11, 13, 15, 16, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 52, 60, 70, 71, 72, 80,
                      81, 99, 252, 253, 254, 255, 256, 257, 258, 259},
    "semantickitti_learning": set(range(20)),
    "nuscenes": set(range(32)),
    "kitti360": set(range(45)) | {65535},
    "mcd": set(range(29)),
    "rellis3d": {0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 17, 18, 19, 23, 27, 31, 33, 34},
    "waymo": set(range(23)),
    "asprs": set(range(19)),
    "squeezeseg": {0, 1, 2, 3},
    "kitti_object": {"Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare"},
}  # fmt: skip


def test_embedded_backend_classes_are_in_the_taxonomy_with_their_ids():
    t = tx.load_taxonomy()
    for name, sid in warp_labels.CLASS_IDS.items():
        assert t.class_id(name) == sid
        # the two tail classes are scored against their parent; the others are head classes
        assert t.get(name).head == (name not in ("wheelchair_user", "cargo_pallet")), name


def test_tail_classes_resolve_to_their_parent():
    assert tx.parent_of("wheelchair_user") == "pedestrian"
    assert tx.parent_of("cargo_pallet") == "static_object"
    assert tx.resolve("wheelchair_user", {"pedestrian", "vehicle"}) == "pedestrian"
    assert tx.resolve("wheelchair_user", {"wheelchair_user", "pedestrian"}) == "wheelchair_user"
    assert tx.resolve("cargo_pallet", {"pedestrian"}) is None
    # the same walk rolls a fine real class up onto the classes a synthetic set uses
    assert tx.resolve("lane_marking", {"ground", "road"}) == "road"
    assert tx.resolve("lane_marking", {"ground"}) == "ground"
    assert tx.head_of("motorcyclist") == "cyclist"
    assert tx.head_of("car") == "vehicle"
    assert tx.ancestors("traffic_light") == ["traffic_sign", "pole"]


def test_unlabeled_aliases_normalise_to_one_name():
    for alias in ("unlabelled", "Unlabeled", "UNKNOWN", "background", " void "):
        assert tx.normalize_class_name(alias) == tx.UNLABELED
    assert tx.normalize_class_name("car") == "car"
    assert "unlabelled" in tx.load_taxonomy()
    assert tx.load_taxonomy().get("unlabelled").id == 0


def test_unknown_class_is_refused_with_a_suggestion():
    with pytest.raises(SimGapInputError, match="did you mean pedestrian"):
        tx.load_taxonomy().get("pedestrain")


def test_every_non_root_class_reaches_a_head_and_ids_are_unique():
    t = tx.load_taxonomy()
    ids = [c.id for c in t]
    assert len(ids) == len(set(ids))
    for c in t:
        assert t.get(t.head_of(c.name)).head, c.name


def test_taxonomy_file_errors(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("classes:\n  unlabeled: {id: 0, parent: null}\n  a: {id: 1, parent: b}\n  b: {id: 2, parent: a}\n")
    with pytest.raises(SimGapInputError, match="cycle"):
        tx.load_taxonomy(bad)
    bad.write_text("classes:\n  unlabeled: {id: 0, parent: null}\n  a: {id: 0, parent: null}\n")
    with pytest.raises(SimGapInputError, match="id 0 is used"):
        tx.load_taxonomy(bad)


@pytest.mark.parametrize("name", sorted(DATASET_IDS))
def test_label_map_covers_every_dataset_id(name):
    lm = load_label_map(name)
    assert set(lm.classes) == DATASET_IDS[name]
    t = tx.load_taxonomy()
    for cls in lm.classes.values():
        assert cls is None or cls in t


def test_every_shipped_map_is_tested():
    assert set(available_label_maps()) == set(DATASET_IDS)


def test_label_map_apply_maps_ids_to_taxonomy_ids():
    lm = load_label_map("semantickitti")
    ids = np.array([0, 10, 252, 30, 254, 40, 1], dtype=np.uint32)
    out, names = lm.apply(ids)
    t = tx.load_taxonomy()
    assert out.tolist() == [0, t.class_id("car"), t.class_id("car"), 30, 30, t.class_id("road"), 0]
    assert names[t.class_id("car")] == "car" and names[30] == "pedestrian"
    with pytest.raises(SimGapInputError, match=r"ids 7 \(2 points\)"):
        lm.apply(np.array([7, 7, 10]))
    # ASPRS reserved / user classes read as its default
    out, _ = load_label_map("asprs").apply(np.array([2, 200]))
    assert out.tolist() == [40, 0]


def test_unknown_label_map_name_lists_the_shipped_ones():
    with pytest.raises(SimGapInputError, match="shipped: .*nuscenes"):
        load_label_map("nuscense")


@pytest.mark.parametrize(
    "text, match",
    [
        ("labels:\n  .inf: car\n", "not an integer"),
        ("labels:\n  1.5: car\n", "not an integer"),
        ("labels:\n  -3: car\n", "outside"),
        ("labels:\n  1: carr\n", "not in the SimGap taxonomy"),
        ("labels:\n  1: 5\n", "expected a taxonomy class"),
        ("[" * 5000 + "]" * 5000, "nested too deeply|invalid YAML|labels"),
        ("labels: [1, 2]\n", "labels"),
        ("\x00\xff", "invalid YAML|UTF-8|labels"),
    ],
)
def test_hostile_label_map_files_are_clean_errors(tmp_path, text, match):
    p = tmp_path / "m.yaml"
    p.write_text(text, encoding="latin-1")
    with pytest.raises(SimGapInputError, match=match):
        load_label_map(p)


def test_user_label_map_short_form(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("0: unlabelled\n7: wheelchair_user\n")
    lm = load_label_map(p)
    assert lm.classes == {0: "unlabeled", 7: "wheelchair_user"}


@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata not present")
def test_real_label_files_use_only_mapped_ids():
    cases = [
        ("kitti360", sorted(REALDATA.glob("kitti360_osm_bki/gt_labels/*.bin")), "<u4"),
        ("mcd", sorted(REALDATA.glob("mcd_kth_day_06/gt_labels/*.bin")), "<u4"),
        ("nuscenes", sorted(REALDATA.glob("nuscenes_lidarseg_cascol/*/ground.bin")), "u1"),
        ("rellis3d", [REALDATA / "rellis3d/000104.label"], "<u4"),
        ("semantickitti", [REALDATA / "spvnas/000000.label"], "<u4"),
    ]
    for name, files, dt in cases:
        lm = load_label_map(name)
        assert files, name
        for f in files:
            ids = np.fromfile(f, dtype=dt).astype(np.int64) & 0xFFFF
            lm.apply(ids, what=str(f))  # raises on an id the map does not list
