"""plan_retry / attempt_row: the re-randomization rule and the manifest row shared by runner and Replicator sink."""

from __future__ import annotations

import pytest

from simgap_ext.data.manifest import validate_manifest_row
from simgap_ext.gate.decision import ClassDecision, GateDecision
from simgap_ext.pipeline.attempt import attempt_row, plan_retry


def _decision(*, accepted=False, failing=(), quarantined=(), sane=True, status=None) -> GateDecision:
    per_class = {
        "vehicle": ClassDecision("vehicle", 300, 2, g=0.9),
        "cyclist": ClassDecision(
            "cyclist", 80, 1, g=0.5 if "cyclist" in failing else 0.9, passed="cyclist" not in failing
        ),
        "pedestrian": ClassDecision("pedestrian", 40, 1, g=0.8, js=0.3, quarantined="pedestrian" in quarantined),
    }
    if status is None:
        status = "accepted" if accepted else ("quarantined" if quarantined and not failing else "rejected")
    return GateDecision(
        accepted=accepted,
        per_class=per_class,
        scene_g=0.9,
        failing_classes=sorted(set(failing) | set(quarantined)),
        reasons=[] if accepted else ["gate said no"],
        quarantined_classes=sorted(quarantined),
        sane=sane,
        status=status,
    )


def test_accepted_is_never_retried() -> None:
    plan = plan_retry(_decision(accepted=True), tail_classes=["cyclist"], attempt=0, max_retries=3)
    assert (plan.retry, plan.label, plan.reasons) == (False, "accepted", [])


def test_failing_tail_class_is_retried_until_the_budget_is_spent() -> None:
    d = _decision(failing=["cyclist"])
    for attempt in range(3):
        plan = plan_retry(d, tail_classes=["cyclist"], attempt=attempt, max_retries=3)
        assert plan.retry and plan.label == "rerandomized"
        assert plan.reasons[-1] == f"re-randomized: tail class(es) cyclist failed (re-randomization {attempt + 1} of 3)"
    last = plan_retry(d, tail_classes=["cyclist"], attempt=3, max_retries=3)
    assert (last.retry, last.label) == (False, "rejected")
    assert last.reasons == ["gate said no", "retry budget spent (3 re-randomizations)"]


def test_failing_non_tail_class_is_dropped_without_retry() -> None:
    plan = plan_retry(_decision(failing=["cyclist"]), tail_classes=["wheelchair_user"], attempt=0, max_retries=3)
    assert (plan.retry, plan.label, plan.reasons) == (False, "rejected", ["gate said no"])


def test_quarantined_class_scenes_are_re_rendered_then_held_back() -> None:
    d = _decision(quarantined=["pedestrian"])
    plan = plan_retry(d, tail_classes=[], attempt=0, max_retries=1)
    assert plan.retry and plan.label == "rerandomized"
    assert "class(es) pedestrian in quarantine" in plan.reasons[-1]
    final = plan_retry(d, tail_classes=[], attempt=1, max_retries=1)
    assert (final.retry, final.label) == (False, "held_back")


def test_unscored_frames_are_not_retried() -> None:
    d = _decision(failing=["cyclist"], sane=False, status="invalid")
    assert not plan_retry(d, tail_classes=["cyclist"], attempt=0, max_retries=3).retry


@pytest.mark.parametrize("accepted", [True, False])
def test_attempt_row_validates_against_the_schema(accepted: bool) -> None:
    d = _decision(accepted=accepted, failing=() if accepted else ["cyclist"])
    plan = plan_retry(d, tail_classes=["cyclist"], attempt=0, max_retries=0)
    files = {"path": "velodyne/000000.bin", "label_path": "labels/000000.label", "index": 0} if accepted else {}
    row = attempt_row(d, plan, sensor="vlp-16", seed=5, attempt=0, frame_id=2, focus_classes=["cyclist"], **files)
    validate_manifest_row(row)
    assert row["decision"] == ("accepted" if accepted else "rejected")
    assert row["class_points"] == {"vehicle": 300, "cyclist": 80, "pedestrian": 40}
    assert row["g"]["cyclist"] == (0.9 if accepted else 0.5)
    assert row["js"]["pedestrian"] == 0.3 and row["scene_g"] == 0.9
