"""Stand-in for ``omni.replicator.core.orchestrator`` (``step`` / ``step_async``); ``_STEP_HOOKS`` run per step.

``step`` advances the timeline by one frame; ``pause_timeline=True`` pauses it (if playing) after the step, as the
real ``rep.orchestrator.step(rt_subframes=-1, pause_timeline=True, delta_time=None, wait_for_render=True)`` does.
``LAST_STEP_PLAYING`` records whether the timeline played during each step (RTX annotators need it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import omni.timeline

_STEP_HOOKS: list[Callable[[], None]] = []
STEP_THREADS: list[int] = []
LAST_STEP_PLAYING: list[bool] = []


def step(
    rt_subframes: int = -1, pause_timeline: bool = True, delta_time: float | None = None, wait_for_render: bool = True
) -> None:
    STEP_THREADS.append(threading.get_ident())
    timeline = omni.timeline.get_timeline_interface()
    LAST_STEP_PLAYING.append(timeline.is_playing())
    timeline._advance(delta_time)
    for hook in list(_STEP_HOOKS):
        hook()
    if pause_timeline and timeline.is_playing():
        timeline.pause()


async def step_async(
    rt_subframes: int = -1, pause_timeline: bool = True, delta_time: float | None = None, wait_for_render: bool = True
) -> None:
    step(
        rt_subframes=rt_subframes, pause_timeline=pause_timeline, delta_time=delta_time, wait_for_render=wait_for_render
    )
