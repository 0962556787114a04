"""The in-process event bus: services fire events, listeners react (Home Assistant's shape).

``listen`` returns the function that removes the listener. Listeners run synchronously in the firing task
and must not block; a listener that raises is logged and removed from nothing else's path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Event types fired by the spine.
TELEMETRY = "telemetry"
TWIN_CHANGED = "twin"
PRESENCE = "presence"
COMMAND = "command"
DEAD_LETTER = "dead_letter"
DEVICE_EVENT = "event"
DEVICE_LIFECYCLE = "device"
PRODUCT_LIFECYCLE = "product"
BINDING_REQUESTED = "binding_requested"  # a device asks for a binding code to show (services/homes answers)
PAYMENT_REQUESTED = "payment_requested"  # a device asks for an activation code or its payment token


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    device_id: str | None
    data: dict[str, Any]
    ts: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "device_id": self.device_id, "ts": self.ts, "data": self.data}


Listener = Callable[[Event], None]


@dataclass
class Bus:
    _listeners: dict[str, list[Listener]] = field(default_factory=dict)

    def listen(self, event_type: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every event of ``event_type`` ("*" for all); returns the unsubscribe."""
        self._listeners.setdefault(event_type, []).append(listener)

        def remove() -> None:
            listeners = self._listeners.get(event_type, [])
            if listener in listeners:
                listeners.remove(listener)

        return remove

    def has_listeners(self, event_type: str) -> bool:
        return bool(self._listeners.get(event_type) or self._listeners.get("*"))

    def fire(self, event: Event) -> None:
        for listener in (*self._listeners.get(event.type, ()), *self._listeners.get("*", ())):
            try:
                listener(event)
            except Exception:
                log.exception("listener %r failed on %s", listener, event.type)
