"""What the session benchmarks share: a lean WebSocket client, setting up a home of TVs, pairing phones.

The load generator shares the 2 cores with the hub, so its per-frame cost must be far below the hub's: after
the upgrade, frames are built and parsed here by hand on an asyncio protocol (the ``websockets`` client costs
several times more CPU per message). Client frames are masked, as RFC 6455 requires, with a zero key, which
leaves the payload as it is.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bench.common import RunningHub

PASSWORD = "correct horse battery"
_MASK = b"\x00\x00\x00\x00"


class WireClient(asyncio.Protocol):
    """One WebSocket connection: ``send`` writes a text frame, ``on_message(payload bytes)`` gets each one."""

    def __init__(self, request: bytes, on_message: Callable[[bytes], Any]) -> None:
        self.request = request
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.close_code = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n)
        if self.transport is not None and not self.closed:
            self.transport.write(head + _MASK + payload)

    def send_json(self, doc: dict[str, Any]) -> None:
        self.send(orjson.dumps(doc))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:12])
            del buf[: end + 4]
            if b" 101" not in status:
                self.upgraded.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                return
            self.upgraded.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, start = b1 & 0x7F, pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n, start = struct.unpack_from("!H", buf, pos + 2)[0], pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 10
            if size < start + n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            opcode = b0 & 0x0F
            if opcode == 0x1 or opcode == 0x2:
                self.on_message(payload)
            elif opcode == 0x9:  # the server's keep-alive ping
                self.send(payload, 0xA)
            elif opcode == 0x8:
                self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
        del buf[:pos]


async def wire_connect(
    host: str, port: int, path: str, on_message: Callable[[bytes], Any], headers: dict[str, str] | None = None
) -> WireClient:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WireClient(request, on_message), host, port)
    await asyncio.wait_for(client.upgraded, 10)
    return client


def screen_headers(device_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{device_id}:{secret}".encode()).decode()}


def cpu_pressure_us() -> int:
    """Microseconds so far in which some runnable task of the machine waited for a core (Linux PSI), or -1."""
    try:
        with open("/proc/pressure/cpu") as pressure:
            return int(pressure.readline().rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return -1


def now_ms() -> float:
    return time.time() * 1000


# -- a home with TVs ------------------------------------------------------------------------------------------


@dataclass
class Home:
    api: str
    token: str
    home_id: str
    tvs: list[dict[str, str]]  # id, secret, name


def set_up_home(hub: RunningHub, tvs: int) -> Home:
    """A person with a home and ``tvs`` smart TVs bound into it, all through the API."""
    email = f"bench-{os.urandom(4).hex()}@example.com"
    with hub.client() as operator, httpx.Client(base_url=hub.api, timeout=60) as anonymous:
        anonymous.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Bench"}
        ).raise_for_status()
        grant = anonymous.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": email, "password": PASSWORD}
        )
        grant.raise_for_status()
        token = grant.json()["access_token"]
        with httpx.Client(base_url=hub.api, timeout=60, headers={"Authorization": f"Bearer {token}"}) as person:
            home = person.post("/api/v1/homes", json={"name": "Game night", "rooms": ["Living room"]})
            home.raise_for_status()
            home_id = home.json()["id"]
            created = operator.post("/api/v1/devices/bulk", json={"product_id": "smart-tv", "count": tvs})
            created.raise_for_status()
            devices = created.json()["devices"]
            for device in devices:
                code = operator.post(f"/api/v1/devices/{device['id']}/binding-codes", json={"valid_days": 1})
                code.raise_for_status()
                bound = person.post(f"/api/v1/homes/{home_id}/devices/bind", json={"code": code.json()["code"]})
                bound.raise_for_status()
    return Home(hub.api, token, home_id, devices)
