"""A merchant's web server for tests: a real HTTP receiver (Starlette on uvicorn, on a free port) that records
what arrives and fails when told to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A merchant's server: answers ``status`` after ``delay_s``, or ``fail_status`` for the next ``fail``
    requests, and counts requests in flight overall and per path."""

    base: str = ""
    requests: list[Received] = field(default_factory=list)
    fail: int = 0
    fail_status: int = 500
    status: int = 200
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    per_path: Counter[str] = field(default_factory=Counter)
    max_per_path: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # ends every delay at teardown

    def url(self, name: str) -> str:
        return f"{self.base}/hooks/{name}"

    def to(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.path == f"/hooks/{name}"]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        self.in_flight += 1
        self.per_path[path] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_per_path = max(self.max_per_path, self.per_path[path])
        try:
            body = await request.body()
            self.requests.append(Received(path, dict(request.headers), body, time.monotonic()))
            if self.delay_s:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), self.delay_s)
            if self.fail > 0:
                self.fail -= 1
                return Response("nope", self.fail_status)
            return Response("ok", self.status)
        finally:
            self.in_flight -= 1
            self.per_path[path] -= 1


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = Starlette(routes=[Route("/hooks/{name}", recv.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    recv.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the receiver did not start"
        await asyncio.sleep(0.01)
    try:
        yield recv
    finally:
        recv.closing.set()
        server.should_exit = True
        await asyncio.wait_for(task, 5)
        sock.close()
