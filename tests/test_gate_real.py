"""The gate on real scans (tests/data nuScenes keyframes): fail closed, perturbations, parents, offline gating."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from simgap_ext.cli import main
from simgap_ext.errors import ReferenceDataError
from simgap_ext.frame import id_to_class, make_frame
from simgap_ext.gate import FrameGate, ReferenceBank, load_gate_config
from simgap_ext.gate.realsets import iter_real_scans
from simgap_ext.gate.validation import perturb

DATA = Path(__file__).parent / "data" / "nuscenes"


@pytest.fixture(scope="module")
def frames():
    out = list(iter_real_scans(DATA))
    assert [n for n, _ in out] == ["data0", "data1"] and all(f["sensor"] == "hdl-32" for _, f in out)
    return out


@pytest.fixture(scope="module")
def bank(frames):
    # The first keyframe alone cannot make a bank: the second is held out, so the bank is data0 plus data0
    # observed through a small, realistic sensor difference (a 2nd sweep with 1 % of rays dropped). The classes stay
    # as read ("fine"): these tests judge stuff classes one by one and a child class against its parent
    # (tests/test_taxonomy_rollup.py covers the default scene level).
    rng = np.random.default_rng(7)
    twin = perturb(frames[0][1], "drop", 0.01, rng)
    return ReferenceBank.build(
        [frames[0], ("data0-twin", twin)], config=load_gate_config(), device="cpu", class_level="fine"
    )


@pytest.fixture()
def gate(bank):
    return FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)


def _rename(frame, old, new):
    names = {sid: (new if c == old else c) for sid, c in id_to_class(frame).items()}
    info = frame["info"]
    return make_frame(frame["data"], info["pointSemantic"], info["pointInstance"], names, sensor=frame["sensor"])


# ------------------------------------------------------------------------------------------------ fail closed


def test_one_frame_bank_is_an_error(frames):
    with pytest.raises(ReferenceDataError, match=r"1 real frame.*at least 2"):
        ReferenceBank.build([frames[0]], device="cpu")


def test_one_scan_reference_build_exits_2(tmp_path, capsys):
    one = tmp_path / "one"
    shutil.copytree(DATA / "data0", one / "data0")
    rc = main(["reference", "build", "--real", str(one), "--out", str(tmp_path / "b.npz"), "--sensor", "hdl-32"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "simgap: error:" in err and "at least 2" in err
    assert not (tmp_path / "b.npz").exists()


def test_two_scans_make_a_coarse_bank_with_a_warning(frames, caplog):
    with caplog.at_level(logging.WARNING, logger="simgap_ext.gate.bank"):
        bank = ReferenceBank.build(frames, device="cpu")
    assert bank.meta.get("coarse") is True and bank.frame_count == 2
    assert any("coarse" in r.message for r in caplog.records)
    assert all(np.isfinite(v) and v > 0 for t in bank.d_max_table.values() for v in t.values())


def test_nan_in_a_saved_bank_is_an_error(bank, tmp_path):
    import io
    import zipfile

    path = bank.save(tmp_path / "bank.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["__meta__"]).decode())
    header["d_max_table"]["scene_range"]["scene"] = float("nan")
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    bad = tmp_path / "nan_dmax.npz"
    np.savez(bad, **arrays)
    # refused on load, by the metadata type check (a d_max must be a positive number)
    with pytest.raises(ReferenceDataError, match=r"d_max.*(nan|positive number)"):
        ReferenceBank.load(bad)
    header["d_max_table"]["scene_range"]["scene"] = 1.0
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    arrays["scene_ranges"] = arrays["scene_ranges"].copy()
    arrays["scene_ranges"][3] = np.nan
    bad2 = tmp_path / "nan_values.npz"
    np.savez(bad2, **arrays)
    with pytest.raises(ReferenceDataError, match="scene_ranges holds NaN"):
        ReferenceBank.load(bad2)
    assert zipfile.is_zipfile(io.BytesIO(bad2.read_bytes()))


def test_nan_points_are_refused(frames, gate):
    f = frames[1][1]
    pts = f["data"].copy()
    pts[5] = np.nan
    info = f["info"]
    with pytest.raises(Exception, match="(?i)nan|finite"):
        gate.evaluate({**f, "data": pts, "info": info})


# ------------------------------------------------------------------------------------ real and perturbed scans


def test_real_keyframe_is_accepted(frames, gate):
    d = gate.evaluate(frames[1][1], update_quarantine=False)
    assert d.accepted, d.reasons
    # every class with enough points was judged, stuff classes included
    judged = {c for c, cd in d.per_class.items() if cd.g is not None}
    assert {"road", "terrain", "vegetation"} <= judged
    assert "composition" in d.scene_components


@pytest.mark.parametrize(
    "kind,strength",
    [("jitter", 0.1), ("drop", 0.5), ("subsample", 4), ("shift", 0.5), ("shift", 2.0), ("rings", 0)],
)
def test_perturbed_real_keyframe_is_rejected_with_margins(frames, gate, kind, strength):
    rng = np.random.default_rng(1)
    pf = perturb(frames[1][1], kind, strength, rng)
    n0, n1 = frames[1][1]["data"].shape[0], pf["data"].shape[0]
    if kind in ("drop", "subsample", "rings"):
        assert n1 < n0  # the perturbation really removed points
    else:
        assert n1 == n0 and not np.allclose(pf["data"], frames[1][1]["data"])
    d = gate.evaluate(pf, update_quarantine=False)
    assert not d.accepted and d.status == "rejected"
    # the reason gives the margin as numbers: distance vs d_max and their ratio
    assert any(" vs d_max " in r and "x)" in r for r in d.reasons), d.reasons


def test_child_class_is_scored_against_its_taxonomy_parent(frames, gate):
    # lane_marking (child of road in the taxonomy) has no real exemplar in the bank
    d = gate.evaluate(_rename(frames[1][1], "road", "lane_marking"), update_quarantine=False)
    cd = d.per_class["lane_marking"]
    assert cd.g is not None and cd.passed
    assert any("scored against its parent class road" in r for r in cd.reasons)
    assert d.accepted, d.reasons


def test_class_without_reference_or_parent_is_rejected(frames, gate):
    d = gate.evaluate(_rename(frames[1][1], "road", "moon_rock"), update_quarantine=False)
    assert not d.accepted and "class moon_rock has no real reference" in d.reasons


# ------------------------------------------------------------------------------------- offline gating and score


def test_score_bank_equals_gate_decisions_and_manifest(tmp_path, capsys):
    from simgap_ext.data import iter_scans
    from simgap_ext.data.manifest import read_manifest, validate_manifest_row

    # bank and synthetic scans through the same reader (iter_scans keeps nuScenes' no-return points at the origin)
    (_, f0), _ = iter_scans(DATA, sensor="hdl-32")
    twin = perturb(f0, "drop", 0.01, np.random.default_rng(7))
    bank = ReferenceBank.build([("data0", f0), ("twin", twin)], config=load_gate_config(), device="cpu")
    bank_path = bank.save(tmp_path / "bank.npz")
    syn = tmp_path / "syn"
    shutil.copytree(DATA / "data1", syn / "data1")
    # a second, perturbed scan in the same layout: 4x subsampled points with their labels
    raw = np.fromfile(DATA / "data1" / "points.bin", np.float32).reshape(-1, 5)
    lab = np.fromfile(DATA / "data1" / "ground.bin", np.uint8)
    (syn / "data9").mkdir()
    raw[::4].tofile(syn / "data9" / "points.bin")
    lab[::4].tofile(syn / "data9" / "ground.bin")
    common = ["--bank", str(bank_path), "--synthetic", str(syn), "--no-progress", "--no-quarantine"]
    assert main(["score", *common, "--json", str(tmp_path / "score.json")]) == 0
    scored = json.loads((tmp_path / "score.json").read_text())["frames"]
    assert main(["gate", *common, "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "1 of 2 scans accepted" in text
    rows = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [r["name"] for r in rows] == [s["name"] for s in scored] == ["data1", "data9"]
    for row, s in zip(rows, scored, strict=True):
        validate_manifest_row(row)
        assert row["decision"] == ("accepted" if s["accepted"] else "rejected")
        assert row["reasons"] == s["reasons"] and row["failing_classes"] == s["failing_classes"]
    assert rows[0]["decision"] == "accepted" and rows[1]["decision"] == "rejected"
    # the accepted scan is exported, the rejected one is not
    assert (tmp_path / "out" / rows[0]["path"]).is_file() and rows[1]["path"] is None
    # the same gate, evaluated directly, agrees with both
    direct = FrameGate(bank, load_gate_config(), device="cpu", quarantine=False)
    for (name, frame), s in zip(iter_scans(syn, sensor="hdl-32"), scored, strict=True):
        assert direct.evaluate(frame).accepted == s["accepted"], name
    # gating into a directory that already holds a manifest is refused
    assert main(["gate", *common, "--out", str(tmp_path / "out")]) == 2


def test_validate_gate_table(frames, tmp_path):
    from simgap_ext.gate.validation import format_table, validate_gate, write_validation_html

    rng = np.random.default_rng(3)
    three = [*frames, ("data1-twin", perturb(frames[1][1], "drop", 0.01, rng))]
    cases = [("jitter 0.2 m", "jitter", 0.2, True), ("class removed", "remove", 0, False)]
    rows = validate_gate(three, max_folds=1, perturbations=cases)
    assert [r.case for r in rows] == ["real (leave one out)", "jitter 0.2 m", "class removed"]
    assert rows[0].n == 1 and rows[1].n == 1 and rows[1].accepted == 0
    table = format_table(rows, "t")
    assert "| jitter 0.2 m | 1 | 0 % | rejected | yes |" in table
    page = write_validation_html(tmp_path / "v.html", [("t", rows)])
    assert "data:image/png;base64," in Path(page).read_text()
