"""Panel model (pure Python) over real AcceptanceStats, and the omni.ui window on the omni.ui stand-in."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import pytest

from simgap_ext.pipeline.stats import AcceptanceStats
from simgap_ext.ui.panel_model import COLUMNS, STATUS_COLORS, PanelModel, panel_rows, summary_line

STUBS = Path(__file__).resolve().parent / "stubs"


def _row(decision: str, g: dict, js: dict | None = None, quarantined: tuple = (), frame_id: int = 0) -> dict:
    """The subset of a manifest row that AcceptanceStats.record_row reads."""
    return {
        "decision": decision,
        "class_points": dict.fromkeys(g, 10),
        "g": g,
        "js": js or {},
        "quarantined": list(quarantined),
        "frame_id": frame_id,
    }


@pytest.fixture
def stats() -> AcceptanceStats:
    s = AcceptanceStats()
    s.record_row(_row("accepted", {"pedestrian": 0.9, "vehicle": 0.8}, {"pedestrian": 0.05}))
    s.record_row(_row("rerandomized", {"pedestrian": 0.7, "wheelchair_user": 0.4}))
    s.record_row(_row("rejected", {"wheelchair_user": 0.5}))
    s.record_row(_row("held_back", {"cyclist": 0.95}, {"cyclist": 0.3}, quarantined=("cyclist",)))
    s.record_row(_row("accepted", {"ground": None}))
    return s


def test_panel_rows_hand_computed(stats):
    rows = {r.class_name: r for r in panel_rows(stats.rows(), g_threshold=0.75, js_threshold=0.15)}
    ped = rows["pedestrian"]
    # pedestrian: accepted once, re-randomized once -> rate 1/2; mean G (0.9 + 0.7) / 2 = 0.8; JS: latest = None
    assert ped.cells == ("pedestrian", "1", "0", "1", "0", "50.0 %", "0.800", "\u2013", "ok")
    assert ped.rate == pytest.approx(0.5) and ped.color == STATUS_COLORS["ok"]
    wc = rows["wheelchair_user"]
    # wheelchair_user: mean G (0.4 + 0.5) / 2 = 0.45 < 0.75
    assert wc.cells[1:7] == ("0", "1", "1", "0", "0.0 %", "0.450") and wc.status == "low G"
    assert "0.450 < threshold 0.75" in wc.tooltip
    assert rows["cyclist"].status == "quarantined" and rows["cyclist"].cells[4] == "1"
    assert rows["cyclist"].color == STATUS_COLORS["quarantined"]
    assert rows["ground"].status == "not scored" and rows["ground"].cells[6] == "\u2013"
    assert len(ped.cells) == len(COLUMNS)


def test_tail_classes_come_first_and_are_marked(stats):
    rows = panel_rows(stats.rows(), tail_classes=["wheelchair_user", "cyclist"])
    assert [r.class_name for r in rows] == ["wheelchair_user", "cyclist", "ground", "pedestrian", "vehicle"]
    assert rows[0].label == "wheelchair_user (tail)" and rows[0].cells[0] == "wheelchair_user (tail)"


def test_js_above_threshold_without_quarantine_is_flagged():
    s = AcceptanceStats()
    s.record_row(_row("accepted", {"vehicle": 0.9}, {"vehicle": 0.2}))
    (row,) = panel_rows(s.rows(), js_threshold=0.15)
    assert row.status == "JS high"


def test_summary_line(stats):
    assert summary_line(stats.frame_counts) == "5 attempts: 2 accepted, 1 rejected, 1 re-randomized, 1 held back"
    assert summary_line({"attempts": 0}) == "No frames gated yet."
    assert summary_line({"attempts": 1, "accepted": 1}).startswith("1 attempt: 1 accepted")


def test_panel_model_dirty_flag_follows_recordings_from_another_thread(stats):
    model = PanelModel(stats)
    assert model.take_dirty() is True and model.take_dirty() is False
    t = threading.Thread(target=stats.record_row, args=(_row("accepted", {"vehicle": 0.9}),))
    t.start()
    t.join()
    assert model.take_dirty() is True
    summary, rows = model.snapshot()
    assert summary.startswith("6 attempts") and len(rows) == 5
    model.detach()
    model.take_dirty()
    stats.record_row(_row("accepted", {"vehicle": 0.9}))
    assert model.take_dirty() is False  # unsubscribed
    assert model.snapshot() == ("No stats attached.", [])


def test_attach_swaps_models_and_releases_the_old_subscription(stats):
    model = PanelModel(stats)
    other = AcceptanceStats()
    model.attach(other, tail_classes=["cyclist"])
    model.take_dirty()
    stats.record_row(_row("accepted", {"vehicle": 0.9}))
    assert model.take_dirty() is False
    other.record_row(_row("accepted", {"cyclist": 0.9}))
    assert model.take_dirty() is True and model.tail_classes == ["cyclist"]


@pytest.fixture
def ui(monkeypatch):
    for name in [n for n in sys.modules if n == "omni" or n.startswith("omni.") or n == "simgap_ext.ui.window"]:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(STUBS))
    ui_mod = importlib.import_module("omni.ui")
    window_mod = importlib.import_module("simgap_ext.ui.window")
    yield ui_mod, window_mod
    for name in [n for n in sys.modules if n == "omni" or n.startswith("omni.") or n == "simgap_ext.ui.window"]:
        del sys.modules[name]


def test_window_builds_rows_and_rebuilds_only_when_dirty(ui, stats):
    ui_mod, window_mod = ui
    callbacks = []
    model = PanelModel(stats, tail_classes=["wheelchair_user"])
    clicked = []
    win = window_mod.SimGapWindow(model, subscribe_updates=callbacks.append, on_run_batch=lambda: clicked.append(1))
    assert win.window.title == "SimGap" and len(callbacks) == 1
    texts = ui_mod._texts(win.window)
    assert "5 attempts: 2 accepted, 1 rejected, 1 re-randomized, 1 held back" in texts
    assert list(COLUMNS) == texts[texts.index("Class") : texts.index("Class") + len(COLUMNS)]
    assert texts.index("wheelchair_user (tail)") < texts.index("pedestrian")
    assert "0.450" in texts and "low G" in texts
    # Kit's update event drives refresh: no change -> no rebuild; a recording -> one rebuild.
    model.take_dirty()
    on_update = callbacks[0]
    on_update(None)
    assert win.refresh() is False
    stats.record_row(_row("accepted", {"cargo_pallet": 0.88}))
    on_update(None)
    assert "cargo_pallet" in ui_mod._texts(win.window)
    (button,) = [w for w in ui_mod._walk(win.window) if isinstance(w, ui_mod.Button)]
    button.call_clicked_fn()
    assert clicked == [1]
    win.visible = False
    assert win.window.visible is False
    win.destroy()
    assert win.window.destroyed


def test_window_without_stats_shows_a_hint(ui):
    ui_mod, window_mod = ui
    win = window_mod.SimGapWindow(PanelModel())
    texts = ui_mod._texts(win.window)
    assert "No stats attached." in texts and "Per-class numbers appear here as frames are gated." in texts
    assert not [w for w in ui_mod._walk(win.window) if isinstance(w, ui_mod.Button)]


def test_update_subscription_prefers_the_event_dispatcher_and_falls_back_to_the_stream():
    """Kit 106+: carb.eventdispatcher observe_event(GLOBAL_EVENT_UPDATE) (isaacsim.core.nodes base_writer_node.py,
    IsaacSim v5.1.0); older Kits: the update event stream's create_subscription_to_pop."""
    from types import SimpleNamespace

    from simgap_ext.ui.events import subscribe_update

    calls = []
    dispatcher = SimpleNamespace(
        get_eventdispatcher=lambda: SimpleNamespace(observe_event=lambda **kw: calls.append(("observe", kw)) or "obs")
    )
    stream = SimpleNamespace(create_subscription_to_pop=lambda cb, name: calls.append(("pop", name)) or "sub")
    old_app = SimpleNamespace(get_app=lambda: SimpleNamespace(get_update_event_stream=lambda: stream))
    new_app = SimpleNamespace(GLOBAL_EVENT_UPDATE="omni.kit.app:update", get_app=old_app.get_app)

    def cb(event):
        return None

    assert subscribe_update(cb, "simgap", app=new_app, dispatcher=dispatcher) == "obs"
    assert calls[-1] == ("observe", {"event_name": "omni.kit.app:update", "on_event": cb, "observer_name": "simgap"})
    assert subscribe_update(cb, "simgap", app=old_app, dispatcher=dispatcher) == "sub"
    assert calls[-1] == ("pop", "simgap")
