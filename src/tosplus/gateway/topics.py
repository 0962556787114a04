"""The topic scheme of the device protocol ``tos/v1`` (see docs/protocol.md).

Device → hub: ``telemetry``, ``twin/reported``, ``events/{name}``, ``commands/{request_id}/response``,
``status``, ``bind/request``, ``pay/activate/request``, ``pay/token/request``. Hub → device: ``twin/desired``
(retained), ``twin/delta``, ``commands/{request_id}``, ``errors``, ``bind/code``, ``pay/activate/code``,
``pay/token`` (never retained: it carries the pay-code key).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

PREFIX = "tos/v1/"


class Kind(str, Enum):
    TELEMETRY = "telemetry"
    REPORTED = "twin/reported"
    EVENT = "events"
    COMMAND_RESPONSE = "commands/response"
    STATUS = "status"
    BIND_REQUEST = "bind/request"
    PAY_ACTIVATE_REQUEST = "pay/activate/request"
    PAY_TOKEN_REQUEST = "pay/token/request"


@dataclass(frozen=True, slots=True)
class Route:
    """What a device → hub topic names: which device, which kind of message, and its name or request id."""

    device_id: str
    kind: Kind
    name: str = ""


def parse(topic: str) -> Route | None:
    """Read a device → hub topic; ``None`` for anything that is not one."""
    if not topic.startswith(PREFIX):
        return None
    parts = topic[len(PREFIX) :].split("/")
    if not parts[0]:
        return None
    device_id, rest = parts[0], parts[1:]
    if rest == ["telemetry"]:
        return Route(device_id, Kind.TELEMETRY)
    if rest == ["twin", "reported"]:
        return Route(device_id, Kind.REPORTED)
    if rest == ["status"]:
        return Route(device_id, Kind.STATUS)
    if rest == ["bind", "request"]:
        return Route(device_id, Kind.BIND_REQUEST)
    if rest == ["pay", "activate", "request"]:
        return Route(device_id, Kind.PAY_ACTIVATE_REQUEST)
    if rest == ["pay", "token", "request"]:
        return Route(device_id, Kind.PAY_TOKEN_REQUEST)
    if len(rest) == 2 and rest[0] == "events" and rest[1]:
        return Route(device_id, Kind.EVENT, rest[1])
    if len(rest) == 3 and rest[0] == "commands" and rest[2] == "response" and rest[1]:
        return Route(device_id, Kind.COMMAND_RESPONSE, rest[1])
    return None


def device_of(topic: str) -> str | None:
    """The device a ``tos/v1/{id}/...`` topic belongs to, even when the rest is not part of the protocol."""
    if not topic.startswith(PREFIX):
        return None
    device_id = topic[len(PREFIX) :].split("/", 1)[0]
    return device_id or None


def telemetry(device_id: str) -> str:
    return f"{PREFIX}{device_id}/telemetry"


def reported(device_id: str) -> str:
    return f"{PREFIX}{device_id}/twin/reported"


def desired(device_id: str) -> str:
    return f"{PREFIX}{device_id}/twin/desired"


def delta(device_id: str) -> str:
    return f"{PREFIX}{device_id}/twin/delta"


def event(device_id: str, name: str) -> str:
    return f"{PREFIX}{device_id}/events/{name}"


def command(device_id: str, request_id: str) -> str:
    return f"{PREFIX}{device_id}/commands/{request_id}"


def command_response(device_id: str, request_id: str) -> str:
    return f"{PREFIX}{device_id}/commands/{request_id}/response"


def status(device_id: str) -> str:
    return f"{PREFIX}{device_id}/status"


def errors(device_id: str) -> str:
    return f"{PREFIX}{device_id}/errors"


def binding_code(device_id: str) -> str:
    return f"{PREFIX}{device_id}/bind/code"


def payment_activation_code(device_id: str) -> str:
    return f"{PREFIX}{device_id}/pay/activate/code"


def payment_token(device_id: str) -> str:
    """The device's payment credentials or their new status; published with QoS 1, never retained."""
    return f"{PREFIX}{device_id}/pay/token"


def device_publish_filters(device_id: str) -> tuple[str, ...]:
    """What a device may publish: only the device → hub topics of its own subtree.

    The hub → device topics (``twin/desired``, ``twin/delta``, ``commands/{id}``, ``errors``) are the hub's
    alone; a device that could publish there could, for one, overwrite its own retained desired state.
    """
    own = f"{PREFIX}{device_id}/"
    return (
        f"{own}telemetry",
        f"{own}twin/reported",
        f"{own}events/+",
        f"{own}commands/+/response",
        f"{own}status",
        f"{own}bind/request",
        f"{own}pay/activate/request",
        f"{own}pay/token/request",
    )


def device_may_publish(device_id: str, topic: str) -> bool:
    route = parse(topic)
    return route is not None and route.device_id == device_id


def device_filter(device_id: str) -> str:
    """Everything under one device: what its access rule allows it to publish and subscribe."""
    return f"{PREFIX}{device_id}/#"


TELEMETRY_FILTER = f"{PREFIX}+/telemetry"

# What the hub subscribes to (one filter per device → hub kind).
HUB_SUBSCRIPTIONS = (
    TELEMETRY_FILTER,
    f"{PREFIX}+/twin/reported",
    f"{PREFIX}+/events/+",
    f"{PREFIX}+/commands/+/response",
    f"{PREFIX}+/status",
    f"{PREFIX}+/bind/request",
    f"{PREFIX}+/pay/activate/request",
    f"{PREFIX}+/pay/token/request",
)
