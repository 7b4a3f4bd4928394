"""Stand-in for ``omni.replicator.core.orchestrator`` (``step`` / ``step_async``); ``_STEP_HOOKS`` run per step."""

from __future__ import annotations

import threading
from collections.abc import Callable

_STEP_HOOKS: list[Callable[[], None]] = []
STEP_THREADS: list[int] = []


def step(
    rt_subframes: int = -1, pause_timeline: bool = True, delta_time: float | None = None, wait_for_render: bool = True
) -> None:
    STEP_THREADS.append(threading.get_ident())
    for hook in list(_STEP_HOOKS):
        hook()


async def step_async(
    rt_subframes: int = -1, pause_timeline: bool = True, delta_time: float | None = None, wait_for_render: bool = True
) -> None:
    step(
        rt_subframes=rt_subframes, pause_timeline=pause_timeline, delta_time=delta_time, wait_for_render=wait_for_render
    )
