"""CoAP (aiocoap) for constrained sensors: the same topics and payloads as MQTT, over UDP.

Paths mirror the topics: ``POST coap://hub/tos/v1/{device_id}/telemetry``, ``.../twin/reported``,
``.../events/{name}``, ``.../status``, ``.../commands/{request_id}/response``; ``GET .../twin/desired`` and
``GET .../commands``. The device authenticates with the query ``?s=<device secret>`` (protect the link with
DTLS or OSCORE where the network is not trusted). Answers: 2.04 Changed when stored; 4.00/4.01/4.13/4.29 with
the reason as text when refused; refused messages are dead letters like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiocoap
import aiocoap.resource as resource
import orjson

from tosplus.errors import ConfigError, TosError
from tosplus.gateway import device_api

if TYPE_CHECKING:
    from tosplus.app import Hub

_CODES = {
    401: aiocoap.UNAUTHORIZED,
    404: aiocoap.NOT_FOUND,
    413: aiocoap.REQUEST_ENTITY_TOO_LARGE,
    429: aiocoap.Code(4 << 5 | 29),
}
_POST_KINDS = {("telemetry",): "telemetry", ("twin", "reported"): "twin/reported", ("status",): "status"}


def _answer(code: aiocoap.Code, text: str = "", payload: bytes | None = None) -> aiocoap.Message:
    return aiocoap.Message(code=code, payload=payload if payload is not None else text.encode())


def _refusal(error: TosError) -> aiocoap.Message:
    return _answer(_CODES.get(error.status, aiocoap.BAD_REQUEST), error.detail)


class DeviceResource(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub

    def _device(self, request: aiocoap.Message) -> str:
        path = request.opt.uri_path
        if not path:
            raise _Refused(aiocoap.NOT_FOUND, "path must start with the device id")
        device_id = path[0]
        secret = next((q[2:] for q in request.opt.uri_query if q.startswith("s=")), "")
        try:
            self.hub.registry.check_device_credentials(device_id, secret)
        except TosError as exc:
            raise _Refused(aiocoap.UNAUTHORIZED, exc.detail) from None
        return str(device_id)

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            device_id = self._device(request)
        except _Refused as refused:
            return _answer(refused.code, refused.text)
        rest = tuple(request.opt.uri_path[1:])
        if rest in _POST_KINDS:
            kind, name = _POST_KINDS[rest], ""
        elif len(rest) == 2 and rest[0] == "events":
            kind, name = "events", rest[1]
        elif len(rest) == 3 and rest[0] == "commands" and rest[2] == "response":
            kind, name = "response", rest[1]
        else:
            return _answer(aiocoap.NOT_FOUND, "no such device resource")
        problem = await device_api.submit(self.hub, device_id, kind, request.payload, name)
        return _refusal(problem) if problem else _answer(aiocoap.CHANGED)

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            device_id = self._device(request)
        except _Refused as refused:
            return _answer(refused.code, refused.text)
        rest = tuple(request.opt.uri_path[1:])
        body: Any
        if rest == ("twin", "desired"):
            body = await device_api.desired(self.hub, device_id)
        elif rest == ("commands",):
            body = {"items": await device_api.pending_commands(self.hub, device_id)}
        else:
            return _answer(aiocoap.NOT_FOUND, "no such device resource")
        message = _answer(aiocoap.CONTENT, payload=orjson.dumps(body))
        message.opt.content_format = 50  # application/json
        return message


class _Refused(Exception):
    def __init__(self, code: aiocoap.Code, text: str) -> None:
        self.code, self.text = code, text


async def start_coap(hub: Hub, host: str, port: int) -> aiocoap.Context:
    site = resource.Site()
    site.add_resource(("tos", "v1"), DeviceResource(hub))
    try:
        return await aiocoap.Context.create_server_context(site, bind=(host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen for CoAP on {host}:{port} (UDP): {exc.strerror}") from None
