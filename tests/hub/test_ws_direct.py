"""The hub's WebSocket protocol (``tosplus.api.ws_direct``) on a real uvicorn server and a real client: the
direct path keeps the order of messages that arrived before it was taken, writes at once, and a handler that
fails or a message that is not UTF-8 ends that connection with a reason, never the server. Each test runs on
a path read by the fast frame reader (uncompressed) and on one read by websockets' parser (compression
agreed, as browsers ask)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from tests.support.services import free_port
from tosplus.api.ws_direct import direct_of, direct_protocol


async def echo_after_a_pause(websocket: WebSocket) -> None:
    """Reads the first message through ASGI, lets more queue up, then takes the direct path and answers each
    message (``boom`` raises) with its number and text, written directly."""
    await websocket.accept()
    first = await websocket.receive_text()
    direct = direct_of(websocket.scope)
    assert direct is not None
    await asyncio.sleep(0.2)  # the client's next messages wait in the ASGI queue meanwhile
    seen = [first]

    def on_message(data: str | bytes) -> None:
        if data == "boom":
            raise RuntimeError("the handler failed")
        seen.append(data if isinstance(data, str) else data.decode())
        assert direct.send_text(f"{len(seen)}:{seen[-1]}")

    direct.take(on_message)
    message = await websocket.receive()
    assert message["type"] == "websocket.disconnect"
    closes.append(message.get("code"))


closes: list[int | None] = []


@pytest.fixture(params=["/fast/ws", "/ws"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[WebSocketRoute("/fast/ws", echo_after_a_pause), WebSocketRoute("/ws", echo_after_a_pause)])
    protocol = direct_protocol(uncompressed=("/fast/",))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws=protocol, log_level="critical")
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}{request.param}"
    finally:
        running.should_exit = True
        await task


async def replies(ws: Any, count: int) -> list[str]:
    return [str(await asyncio.wait_for(ws.recv(), 5)) for _ in range(count)]


async def test_messages_keep_their_order_across_the_switch_to_the_direct_path(server: str) -> None:
    async with websockets.connect(server) as ws:
        for i in range(40):  # all sent before the route takes the direct path: most wait in the queue
            await ws.send(f"m{i}")
        early = await replies(ws, 39)
        for i in range(40, 60):
            await ws.send(f"m{i}")
        late = await replies(ws, 20)
    assert early + late == [f"{n}:m{n - 1}" for n in range(2, 61)]


async def test_a_failing_handler_closes_its_connection_with_1011_and_others_go_on(server: str) -> None:
    async with websockets.connect(server) as ws:
        await ws.send("hello")
        await ws.send("boom")
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    async with websockets.connect(server) as ws:
        await ws.send("hello")
        await ws.send("still here")
        assert await replies(ws, 1) == ["2:still here"]


async def test_text_that_is_not_utf8_is_refused_with_1007(server: str) -> None:
    async with websockets.connect(server) as ws:
        await ws.send("hello")
        await asyncio.sleep(0.3)  # the route has taken the direct path
        async with ws.send_context():
            ws.protocol.send_text(b"\xff\xfe not text")  # a text frame whose bytes are not UTF-8
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


async def test_binary_messages_reach_the_handler_too(server: str) -> None:
    async with websockets.connect(server) as ws:
        await ws.send("hello")
        await ws.send(b"bytes")
        assert await replies(ws, 1) == ["2:bytes"]


async def test_compression_is_agreed_only_off_the_fast_paths(server: str) -> None:
    async with websockets.connect(server) as ws:  # the client offers permessage-deflate
        agreed = ws.response is not None and "permessage-deflate" in str(ws.response.headers)
        await ws.send("hello")
        await ws.send("x" * 5000)
        assert await replies(ws, 1) == ["2:" + "x" * 5000]
    assert agreed == ("/fast/" not in server)


async def test_pings_are_answered_and_the_close_code_reaches_the_route(server: str) -> None:
    closes.clear()
    async with websockets.connect(server) as ws:
        await ws.send("hello")
        await asyncio.sleep(0.3)
        pong = await ws.ping(b"still there?")
        await asyncio.wait_for(pong, 5)
        await ws.send("after the ping")
        assert await replies(ws, 1) == ["2:after the ping"]
        await ws.close(4000, "bye")
    for _ in range(100):
        if closes:
            break
        await asyncio.sleep(0.02)
    assert closes == [4000]
