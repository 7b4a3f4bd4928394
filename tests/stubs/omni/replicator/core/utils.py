"""Stand-in for ``omni.replicator.core.utils`` (``send_og_event`` only); records the events sent.

``_LISTENERS[event_name]`` (stand-in only) are called when the event is sent, as a graph triggered by
``rep.trigger.on_custom_event(event_name=...)`` would run.
"""

from __future__ import annotations

from collections.abc import Callable

SENT_EVENTS: list[tuple[str, dict]] = []
_LISTENERS: dict[str, list[Callable[[], None]]] = {}


def send_og_event(event_name: str, payload: dict | None = None) -> None:
    SENT_EVENTS.append((event_name, dict(payload or {})))
    for listener in list(_LISTENERS.get(event_name, ())):
        listener()
