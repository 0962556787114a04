"""How services send to devices without knowing which broker is in use."""

from __future__ import annotations

from typing import Protocol


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message to the broker; never blocks the event loop."""


class NullPublisher:
    """Drops everything: for tools that open the hub's data without a broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))
