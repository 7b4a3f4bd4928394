"""Manifest rows: schema shipped in docs/, durable append, torn-line handling, full-disk behaviour."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import jsonschema
import pytest

from simgap_ext.data import manifest as mf
from simgap_ext.errors import ExportError, SimGapInputError

DOCS_SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "manifest.schema.json"


def _row(i: int, **kw) -> dict:
    base = dict(
        domain="synthetic",
        sensor="vlp-16",
        decision="accepted",
        path=f"velodyne/{i:06d}.bin",
        label_path=f"labels/{i:06d}.label",
        index=i,
        seed=100 + i,
        attempt=0,
        frame_id=i,
        focus_classes=["wheelchair_user"],
        class_points={"pedestrian": 40 + i, "ground": 900},
        class_instances={"pedestrian": 2, "ground": 0},
        g={"pedestrian": 0.8, "ground": None},
        js={"pedestrian": 0.05},
        scene_g=0.9,
    )
    base.update(kw)
    return mf.make_row(**base)


def test_docs_schema_is_the_code_schema_and_is_valid():
    shipped = json.loads(DOCS_SCHEMA.read_text())
    assert shipped == json.loads(json.dumps(mf.MANIFEST_SCHEMA))
    jsonschema.Draft202012Validator.check_schema(shipped)


def test_rows_validate_against_shipped_schema():
    validator = jsonschema.Draft202012Validator(json.loads(DOCS_SCHEMA.read_text()))
    rejected = _row(1, decision="rejected", path=None, label_path=None, index=None)
    for row in (_row(0), rejected):
        validator.validate(json.loads(json.dumps(row)))
    bad = dict(_row(2))
    bad["decision"] = "maybe"
    assert not validator.is_valid(bad)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"decision": "maybe"}, "field decision"),
        ({"g": {"pedestrian": 1.5}}, "field g/pedestrian"),
        ({"class_points": {"pedestrian": -1}}, "field class_points/pedestrian"),
        ({"extra_field": 1}, "Additional properties"),
        ({"timestamp": "yesterday"}, "field timestamp"),
        ({"path": None}, "path and label_path"),
        ({"decision": "rejected"}, "path exactly when its decision is 'accepted'"),
    ],
)
def test_validation_names_field(change, match):
    row = {**_row(0), **change}
    with pytest.raises(SimGapInputError, match=match):
        mf.validate_manifest_row(row, where="m.jsonl:1")


def test_missing_field_named():
    row = _row(0)
    del row["seed"]
    with pytest.raises(SimGapInputError, match="'seed' is a required property"):
        mf.validate_manifest_row(row)


def test_nan_scores_become_null():
    row = _row(0, g={"pedestrian": float("nan")})
    assert row["g"]["pedestrian"] is None


def test_write_read_roundtrip(tmp_path):
    path = tmp_path / "run" / "manifest.jsonl"
    rows = [_row(i) for i in range(3)]
    with mf.ManifestWriter(path) as w:
        for r in rows:
            w.append(r)
    assert mf.read_manifest(path) == rows
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 3


def test_torn_last_line_ignored_then_repaired(tmp_path):
    path = tmp_path / "manifest.jsonl"
    rows = [_row(i) for i in range(2)]
    with mf.ManifestWriter(path) as w:
        for r in rows:
            w.append(r)
    intact = path.read_bytes()
    with open(path, "ab") as fh:  # what a kill in the middle of a write leaves
        fh.write(json.dumps(_row(2)).encode()[:37])
    assert mf.read_manifest(path) == rows
    assert path.read_bytes() != intact  # reading alone does not modify
    assert mf.repair_manifest(path) == 37
    assert path.read_bytes() == intact
    # Appending after a torn line (writer opens -> repairs) continues cleanly.
    with open(path, "ab") as fh:
        fh.write(b'{"schema_ver')
    with mf.ManifestWriter(path) as w:
        w.append(_row(2))
    assert [r["index"] for r in mf.read_manifest(path)] == [0, 1, 2]


def test_valid_json_without_newline_counts_as_torn(tmp_path):
    # A row is committed only with its newline: the exported files of such a row are orphans to redo.
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(json.dumps(_row(0)).encode() + b"\n" + json.dumps(_row(1)).encode())
    assert [r["index"] for r in mf.read_manifest(path)] == [0]


def test_invalid_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(_row(0)) + "\n{broken\n" + json.dumps(_row(1)) + "\n")
    with pytest.raises(SimGapInputError, match=r"manifest.jsonl:2: invalid JSON"):
        mf.read_manifest(path)


def test_invalid_row_names_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    bad = {**_row(1), "attempt": -1}
    path.write_text(json.dumps(_row(0)) + "\n" + json.dumps(bad) + "\n" + json.dumps(_row(2)) + "\n")
    with pytest.raises(SimGapInputError, match=r"manifest.jsonl:2: field attempt"):
        mf.read_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(SimGapInputError, match="manifest not found"):
        mf.read_manifest(tmp_path / "nope.jsonl")
    assert mf.read_manifest(tmp_path / "nope.jsonl", missing_ok=True) == []


def test_enospc_midway_leaves_only_complete_lines(tmp_path, monkeypatch):
    path = tmp_path / "manifest.jsonl"
    w = mf.ManifestWriter(path)
    w.append(_row(0))
    before = path.read_bytes()
    real_write = os.write

    def full_disk(fd, data):
        # The OS accepts part of the line, then the disk is full.
        real_write(fd, bytes(data[:20]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mf.os, "write", full_disk)
    with pytest.raises(ExportError, match=r"no space left on device writing manifest .*manifest.jsonl"):
        w.append(_row(1))
    monkeypatch.setattr(mf.os, "write", real_write)
    assert path.read_bytes() == before
    w.append(_row(1))
    w.close()
    assert [r["index"] for r in mf.read_manifest(path)] == [0, 1]


def test_invalid_row_is_not_written(tmp_path):
    path = tmp_path / "manifest.jsonl"
    with mf.ManifestWriter(path) as w:
        with pytest.raises(SimGapInputError):
            w.append({**_row(0), "domain": "fake"})
    assert path.read_bytes() == b""


def test_unwritable_directory(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="permission denied"):
            mf.ManifestWriter(d / "manifest.jsonl")
    finally:
        d.chmod(0o700)


def test_resolve_row_path(tmp_path):
    row = _row(3)
    assert mf.resolve_row_path(tmp_path / "m.jsonl", row) == tmp_path.resolve() / "velodyne" / "000003.bin"
    assert mf.resolve_row_path(tmp_path / "m.jsonl", {**row, "path": None}) is None


def test_parent_is_a_file_is_export_error(tmp_path):
    # Runs as root too (unlike a chmod test): the manifest's directory cannot be created.
    blocker = tmp_path / "out"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError, match=r"opening manifest .*out/manifest.jsonl"):
        mf.ManifestWriter(blocker / "manifest.jsonl")


WEIRD = [None, -1, 0, 1, 1.0, 0.5, True, "", "x", [], ["a"], [1], {}, {"a": 2}, {"a": True}, {"a": 0.5},
         {"a": None}, {"a": -1}, float("nan"), "2026-11-25T12:00:00Z"]  # fmt: skip


@pytest.mark.parametrize("field", sorted(mf.MANIFEST_SCHEMA["properties"]) + ["unknown_key"])
def test_fast_path_never_accepts_what_the_schema_rejects(field):
    # validate_manifest_row skips jsonschema for rows its fast check accepts: that check must never be laxer.
    validator = jsonschema.Draft202012Validator(mf.MANIFEST_SCHEMA)
    bases = (_row(0), _row(1, decision="rejected", path=None, label_path=None, index=None))
    assert all(mf._fast_valid(b) for b in bases)  # ordinary rows take the fast path
    for base in bases:
        for value in WEIRD:
            row = {**base, field: value}
            if mf._fast_valid(row):
                assert validator.is_valid(row), (field, value)
        row = dict(base)
        row.pop(field, None)
        if mf._fast_valid(row):
            assert validator.is_valid(row), (field, "missing")
