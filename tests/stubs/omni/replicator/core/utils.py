"""Stand-in for ``omni.replicator.core.utils`` (``send_og_event`` only); records the events sent."""

from __future__ import annotations

SENT_EVENTS: list[tuple[str, dict]] = []


def send_og_event(event_name: str, payload: dict | None = None) -> None:
    SENT_EVENTS.append((event_name, dict(payload or {})))
