"""Stand-in for ``omni.timeline`` (``get_timeline_interface``: play / pause / stop / is_playing /
get_current_time / get_time_codes_per_seconds), for tests only.

RTX sensors only tick while the timeline plays ("RTX Sensor Annotators rely on the simulation timeline to collect
data. If the timeline is not playing ... the annotators will not collect data": Isaac Sim docs, RTX Sensor
Annotators, 5.0 / 6.0): the Replicator stand-in reads ``is_playing()`` to decide whether RTX annotators get data.
Stand-in-only: ``_advance(dt)`` moves the current time (the orchestrator stand-in calls it per step).
"""

from __future__ import annotations


class _Timeline:
    def __init__(self) -> None:
        self._playing = False
        self._time = 0.0
        self._rate = 60.0

    def play(self) -> None:
        self._playing = True

    def pause(self) -> None:
        self._playing = False

    def stop(self) -> None:
        self._playing = False
        self._time = 0.0

    def is_playing(self) -> bool:
        return self._playing

    def is_stopped(self) -> bool:
        return not self._playing and self._time == 0.0

    def get_current_time(self) -> float:
        return self._time

    def get_time_codes_per_seconds(self) -> float:
        return self._rate

    def _advance(self, dt: float | None = None) -> None:
        self._time += (1.0 / self._rate) if dt is None else float(dt)


_TIMELINE = _Timeline()


def get_timeline_interface() -> _Timeline:
    return _TIMELINE


def _reset() -> None:
    """Stand-in only: a fresh stopped timeline at t = 0."""
    _TIMELINE.stop()
