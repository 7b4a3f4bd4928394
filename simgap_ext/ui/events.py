"""Per-frame update subscription on whichever event API the running Kit has.

Kit 106+ (Isaac Sim 4.5 and later) dispatches the app update as the global event
``omni.kit.app.GLOBAL_EVENT_UPDATE`` through ``carb.eventdispatcher`` (``observe_event``, as Isaac Sim's own
``isaacsim.core.nodes/python/impl/base_writer_node.py`` does at ``v5.1.0``); the update *event stream*
(``get_update_event_stream().create_subscription_to_pop``) is deprecated there but is all older Kits offer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["subscribe_update"]


def subscribe_update(callback: Callable[[Any], None], name: str, *, app: Any = None, dispatcher: Any = None) -> Any:
    """Call ``callback(event)`` on every Kit update; the returned handle unsubscribes when released.

    Args:
        callback: called once per app update with the event.
        name: observer name (shows in Kit's profiler).
        app: ``omni.kit.app`` module (default: imported).
        dispatcher: ``carb.eventdispatcher`` module (default: imported when present).
    """
    if app is None:
        import omni.kit.app as app
    event_name = getattr(app, "GLOBAL_EVENT_UPDATE", None)
    if dispatcher is None and event_name is not None:
        try:
            import carb.eventdispatcher as dispatcher
        except ImportError:
            dispatcher = None
    if dispatcher is not None and event_name is not None:
        return dispatcher.get_eventdispatcher().observe_event(
            event_name=event_name, on_event=callback, observer_name=name
        )
    stream = app.get_app().get_update_event_stream()
    return stream.create_subscription_to_pop(callback, name=name)
