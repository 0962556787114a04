"""Indexes for the embedded broker's subscriptions and retained messages, by the first three topic levels.

amqtt keeps both in plain dicts and scans them whole for every message, connect and subscribe, which made
10,000 subscribing devices impossible. Every TOS+ device topic starts with ``tos/v1/<id>``, so filing each
filter (and each retained message) under its first three levels, when those hold no wildcard, turns most
look-ups into one dict access; the few wildcard-leading filters (the hub's) are checked one by one. Every
candidate is still confirmed with amqtt's own matcher by the caller, so results are exactly amqtt's.
"""

from __future__ import annotations

from typing import Any

from amqtt.session import Session

__all__ = ["RetainedIndex", "SubscriptionIndex", "first_levels", "literal_key"]


def first_levels(name: str) -> str | None:
    """The first three levels of a topic name or filter (``tos/v1/<id>``), or ``None`` if it has fewer."""
    first = name.find("/")
    if first < 0:
        return None
    second = name.find("/", first + 1)
    if second < 0:
        return None
    third = name.find("/", second + 1)
    return name if third < 0 else name[:third]


def literal_key(topic_filter: str) -> str | None:
    """The first three levels of a filter if they hold no wildcard (only then is every topic name it matches
    under the same three levels), else ``None``."""
    key = first_levels(topic_filter)
    if key is None or "+" in key or "#" in key:
        return None
    return key


class SubscriptionIndex(dict[str, list[tuple[Session, int]]]):
    """amqtt's ``Broker._subscriptions`` (topic filter -> [(session, qos)]) with two indexes kept up to date
    by every mutation of the dict: filters by their first three levels when those are literal (all of a
    device's) plus the few others (the hub's ``tos/v1/+/...``), and filters by subscribed client id."""

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, dict[str, None]] = {}  # ordered sets
        self._unkeyed: dict[str, None] = {}
        self._by_client: dict[str, dict[str, None]] = {}

    def __repr__(self) -> str:
        # amqtt's _client_message_loop logs repr(self._subscriptions) at every SUBSCRIBE, even with DEBUG off.
        return f"<{len(self)} topic filters>"

    def candidates(self, topic: str) -> list[str]:
        """The filters that may match the topic name ``topic`` (a superset; check each with ``_matches``)."""
        key = first_levels(topic)
        keyed = self._by_key.get(key, ()) if key is not None else ()
        return [*keyed, *self._unkeyed]

    def filters_of(self, client_id: str) -> list[str]:
        return list(self._by_client.get(client_id, ()))

    def subscribed(self, client_id: str, topic_filter: str) -> None:
        self._by_client.setdefault(client_id, {})[topic_filter] = None

    def unsubscribed(self, client_id: str, topic_filter: str) -> None:
        own = self._by_client.get(client_id)
        if own is not None:
            own.pop(topic_filter, None)
            if not own:
                del self._by_client[client_id]

    def _added(self, topic_filter: str) -> None:
        key = literal_key(topic_filter)
        if key is None:
            self._unkeyed[topic_filter] = None
        else:
            self._by_key.setdefault(key, {})[topic_filter] = None

    def _removed(self, topic_filter: str, holders: list[tuple[Session, int]]) -> None:
        key = literal_key(topic_filter)
        if key is None:
            self._unkeyed.pop(topic_filter, None)
        else:
            under = self._by_key.get(key)
            if under is not None:
                under.pop(topic_filter, None)
                if not under:
                    del self._by_key[key]
        for holder, _qos in holders:
            self.unsubscribed(holder.client_id, topic_filter)

    def __setitem__(self, topic_filter: str, holders: list[tuple[Session, int]]) -> None:
        if topic_filter not in self:
            self._added(topic_filter)
        super().__setitem__(topic_filter, holders)

    def __delitem__(self, topic_filter: str) -> None:
        holders = self[topic_filter]
        super().__delitem__(topic_filter)
        self._removed(topic_filter, holders)

    def pop(self, topic_filter: str, *default: Any) -> Any:
        if topic_filter in self:
            holders = super().pop(topic_filter)
            self._removed(topic_filter, holders)
            return holders
        return super().pop(topic_filter, *default)

    def popitem(self) -> tuple[str, list[tuple[Session, int]]]:
        topic_filter, holders = super().popitem()
        self._removed(topic_filter, holders)
        return topic_filter, holders

    def setdefault(self, topic_filter: str, default: Any = None) -> Any:
        if topic_filter not in self:
            self[topic_filter] = default
        return self[topic_filter]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for topic_filter, holders in dict(*args, **kwargs).items():
            self[topic_filter] = holders

    def clear(self) -> None:
        super().clear()
        self._by_key.clear()
        self._unkeyed.clear()
        self._by_client.clear()


class RetainedIndex(dict[str, Any]):
    """amqtt's ``Broker._retained_messages`` (topic name -> message), indexed by the first three levels of
    the topic so that a filter with literal first levels finds its retained messages without a scan."""

    def __init__(self) -> None:
        super().__init__()
        self._by_key: dict[str, dict[str, None]] = {}

    def __repr__(self) -> str:
        return f"<{len(self)} retained messages>"

    def candidates(self, topic_filter: str) -> list[tuple[str, Any]]:
        """(topic, message) pairs that may match ``topic_filter`` (a superset; check each with ``_matches``)."""
        key = literal_key(topic_filter)
        if key is None:
            return list(self.items())
        return [(topic, self[topic]) for topic in self._by_key.get(key, ())]

    def _removed(self, topic: str) -> None:
        key = first_levels(topic)
        if key is None or key not in self._by_key:
            return
        under = self._by_key[key]
        under.pop(topic, None)
        if not under:
            del self._by_key[key]

    def __setitem__(self, topic: str, message: Any) -> None:
        key = first_levels(topic)
        if key is not None:
            self._by_key.setdefault(key, {})[topic] = None
        super().__setitem__(topic, message)

    def __delitem__(self, topic: str) -> None:
        super().__delitem__(topic)
        self._removed(topic)

    def pop(self, topic: str, *default: Any) -> Any:
        if topic in self:
            self._removed(topic)
        return super().pop(topic, *default)

    def popitem(self) -> tuple[str, Any]:
        topic, message = super().popitem()
        self._removed(topic)
        return topic, message

    def setdefault(self, topic: str, default: Any = None) -> Any:
        if topic not in self:
            self[topic] = default
        return self[topic]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for topic, message in dict(*args, **kwargs).items():
            self[topic] = message

    def clear(self) -> None:
        super().clear()
        self._by_key.clear()
