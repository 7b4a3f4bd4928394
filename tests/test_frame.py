"""The frame contract (DESIGN.md "Frame layout"): normalisation and the errors bad frames raise."""

from __future__ import annotations

import numpy as np
import pytest

from simgap_ext.errors import SimGapInputError
from simgap_ext.frame import class_names, class_points, id_to_class, make_frame, validate_frame


def _frame(n: int = 5) -> dict:
    pts = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    sem = np.array([10, 10, 30, 30, 30][:n], dtype=np.int64)
    inst = np.array([1, 1, 2, 2, 3][:n])
    return make_frame(pts, sem, inst, {10: "vehicle", 30: {"class": "pedestrian"}}, sensor="vlp-16", seed=7)


def test_make_frame_normalises_dtypes_and_metadata() -> None:
    f = _frame()
    assert f["data"].dtype == np.float32 and f["data"].shape == (5, 3)
    assert f["info"]["pointSemantic"].dtype == np.uint32
    assert f["info"]["pointInstance"].dtype == np.uint32
    assert f["info"]["idToLabels"] == {10: {"class": "vehicle"}, 30: {"class": "pedestrian"}}
    assert (f["sensor"], f["seed"], f["attempt"], f["focus_classes"]) == ("vlp-16", 7, 0, [])


def test_accessors_select_class_points() -> None:
    f = _frame()
    assert id_to_class(f) == {10: "vehicle", 30: "pedestrian"}
    assert class_names(f) == ["pedestrian", "vehicle"]
    np.testing.assert_array_equal(class_points(f, "vehicle"), np.array([[0, 1, 2], [3, 4, 5]], dtype=np.float32))
    assert class_points(f, "cyclist").shape == (0, 3)


def test_string_keys_from_replicator_are_accepted() -> None:
    f = _frame()
    f["info"]["idToLabels"] = {"10": {"class": "vehicle"}, "30": {"class": "pedestrian"}}
    assert validate_frame(f)["info"]["idToLabels"][30] == {"class": "pedestrian"}


def test_empty_frame_is_valid() -> None:
    f = make_frame(np.zeros((0, 3)), np.zeros(0, np.uint32), np.zeros(0, np.uint32), {})
    assert f["data"].shape == (0, 3)
    assert class_names(f) == []


def test_make_frame_reports_bad_label_maps_by_name() -> None:
    pts, ids = np.zeros((2, 3)), np.array([1, 1])
    with pytest.raises(SimGapInputError, match=r"idToLabels key 'car' is not an integer id"):
        make_frame(pts, ids, ids, {"car": "vehicle"})
    with pytest.raises(SimGapInputError, match=r"idToLabels\[1\] must be a name or"):
        make_frame(pts, ids, ids, {1: 10})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.update(data=np.zeros((5, 2))), r"shape \(N, 3\)"),
        (lambda f: f["data"].__setitem__((2, 1), np.nan), "1 non-finite"),
        (lambda f: f["info"].update(pointSemantic=np.zeros(4, np.uint32)), "4 entries for 5 points"),
        (lambda f: f["info"].update(pointSemantic=np.array([10, 10, 30, 30, 99])), r"semantic ids \[99\]"),
        (lambda f: f["info"].pop("pointInstance"), "missing 'pointInstance'"),
        (lambda f: f.update(intensity=np.zeros(3)), "'intensity' has 3 entries"),
        (lambda f: f["info"].update(pointInstance=np.array([0, 0, -1, 0, 0])), "negative ids"),
        # ids that do not fit the contract's uint32 would wrap around into another class / instance
        (lambda f: f["info"].update(pointSemantic=np.array([10, 10, 30, 30, 2**32 + 10])), "beyond uint32"),
        (lambda f: f["info"].update(pointInstance=np.array([1, 1, 2, 2, 2**32 + 1])), "beyond uint32"),
        (lambda f: f["info"].update(pointSemantic=np.array(["a"] * 5)), "must hold integer ids, got dtype"),
        (lambda f: f.update(data=np.full((5, 3), "x")), "'data' must hold numbers"),
        (lambda f: f.update(info=None), "'info' must be a mapping"),
        (lambda f: f["info"].update(idToLabels={10: "vehicle", 30: 7}), r"idToLabels\[30\] must be a name"),
        (lambda f: f.update(intensity=np.array([0.1, np.nan, 0.2, 0.3, np.inf])), "'intensity' contains 2 non-finite"),
        (lambda f: f.update(coordinate_frame="World"), r"coordinate_frame must be one of \('sensor', 'world'\)"),
    ],
)
def test_bad_frames_raise_named_errors(mutate, message) -> None:
    f = _frame()
    f["data"] = f["data"].copy()
    mutate(f)
    with pytest.raises(SimGapInputError, match=message):
        validate_frame(f)


def test_a_validated_frame_is_accepted_as_is_until_a_part_is_swapped() -> None:
    import copy
    import pickle

    from simgap_ext.frame import Frame

    f = _frame()
    assert type(f) is Frame and validate_frame(f) is f  # later stages do not validate it again
    g = pickle.loads(pickle.dumps(f))
    assert type(g) is Frame and validate_frame(g) is g and np.array_equal(g["data"], f["data"])
    assert validate_frame(copy.deepcopy(f)) is not f
    f["info"]["idToLabels"] = {10: {"class": "vehicle"}}  # swapped in: noticed, validated again
    with pytest.raises(SimGapInputError, match=r"semantic ids \[30\] are not in idToLabels"):
        validate_frame(f)
    plain = dict(_frame())
    assert type(plain) is dict and type(validate_frame(plain)) is Frame
