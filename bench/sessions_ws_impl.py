"""What relaying one game-pad frame costs in each of uvicorn's WebSocket implementations, with and without batches.

A bare uvicorn server (uvloop, no Starlette, no hub) in its own process relays, as the hub does, each frame
received on one of N "phone" connections to one of M "TV" connections through a writer task per TV; either one
WebSocket message per frame or, with batches, every frame waiting for the TV in one message. The load comes
from the same lean clients as ``sessions_scale.py``. The figure is the server's CPU time (user + system, from
/proc) per frame, which holds on a busy machine far better than latencies do; this separates the WebSocket
stack's share of the hub's cost per frame from the relay's own. ``asyncio-protocol`` is the floor without ASGI:
the upgrade and the frames handled by hand on an asyncio protocol (frames parsed in ``data_received`` and handed
on at once, the TVs written once per loop pass), as a listener of the hub's own for session sockets would.
``hub-protocol`` is what the hub runs now: uvicorn with ``tosplus.api.ws_direct`` (uncompressed paths, frames
read by ``ws_frames``, each phone's messages handed on as the socket reads them, the TVs written without ASGI).

    python bench/sessions_ws_impl.py --phones 300 --tvs 10 --rate 60 --seconds 8
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing as mp
import os
import socket
import sys
import time
import zlib
from collections import deque
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import free_port, machine, wait_port
from bench.sessions_latency import cpu_seconds
from bench.sessions_wire import cpu_pressure_us, now_ms, wire_connect

console = Console()
IMPLEMENTATIONS = [
    "hub-protocol",
    "websockets-sansio",
    "websockets",
]  # wsproto when installed; "asyncio-protocol": no ASGI
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


class Tv:
    def __init__(self, send: Any, batch: bool, direct: Any = None) -> None:
        self.send, self.batch, self.direct = send, batch, direct
        self.waiting: deque[str] = deque()
        self.ready = asyncio.Event()

    async def write(self) -> None:
        while True:
            if not self.waiting:
                self.ready.clear()
                await self.ready.wait()
                continue
            if self.batch:
                frames = list(self.waiting)
                self.waiting.clear()
                text = '{"type":"inputs","frames":[' + ",".join(frames) + "]}"
            else:
                text = self.waiting.popleft()
            if self.direct is not None:
                self.direct.send_text(text)
            else:
                await self.send({"type": "websocket.send", "text": text})


class RawTv(asyncio.Protocol):
    """A TV's connection on the bare protocol: the frames waiting for it go out in one write per loop pass."""

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.transport: asyncio.Transport | None = None
        self.waiting: list[bytes] = []

    def queue(self, payload: bytes) -> None:
        if not self.waiting:
            asyncio.get_running_loop().call_soon(self.flush)
        self.waiting.append(payload)

    def flush(self) -> None:
        frames, self.waiting = self.waiting, []
        if self.transport is None or self.transport.is_closing():
            return
        if self.batch:
            frames = [b'{"type":"inputs","frames":[' + b",".join(frames) + b"]}"]
        self.transport.write(b"".join(_frame(payload) for payload in frames))


def _frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class RawWs(asyncio.Protocol):
    """The WebSocket server side by hand: the upgrade, then masked client frames parsed in ``data_received``
    and handed on at once; no ASGI, no queue, no task per frame."""

    def __init__(self, tvs: list[RawTv], batch: bool) -> None:
        self.tvs, self.batch = tvs, batch
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.tv: RawTv | None = None  # where this phone's frames go
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        from websockets.frames import apply_mask  # the C speedup websockets uses

        buf = self.buffer
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            path = head[0].split(" ")[1]
            key = next(line.split(":", 1)[1].strip() for line in head if line.lower().startswith("sec-websocket-key"))
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            self.upgraded = True
            if path == "/tv":
                tv = RawTv(self.batch)
                tv.transport = self.transport
                self.tvs.append(tv)
            else:
                self.tv = self.tvs[int(path.rsplit("/", 1)[1]) % len(self.tvs)]
        pos, size = 0, len(buf)
        while size - pos >= 6:
            opcode, b1 = buf[pos] & 0x0F, buf[pos + 1]
            n, start = b1 & 0x7F, pos + 2
            if n == 126:
                n, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif n == 127:
                n, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if size < start + 4 + n:
                break
            mask = bytes(buf[start : start + 4])
            payload = apply_mask(bytes(buf[start + 4 : start + 4 + n]), mask)
            pos = start + 4 + n
            if opcode == 0x1 and self.tv is not None:
                self.tv.queue(payload)
        del buf[:pos]


def server_main(port: int, implementation: str, batch: bool, deflate: bool = False) -> None:
    import uvicorn
    import uvloop

    if implementation == "asyncio-protocol":

        async def bare() -> None:
            raw_tvs: list[RawTv] = []
            server = await asyncio.get_running_loop().create_server(lambda: RawWs(raw_tvs, batch), "127.0.0.1", port)
            await server.serve_forever()

        uvloop.run(bare())
        return

    from tosplus.api.ws_direct import direct_of, direct_protocol

    tvs: list[Tv] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        direct = direct_of(scope)
        if scope["path"] == "/tv":
            tv = Tv(send, batch, direct)
            tvs.append(tv)
            writer = asyncio.get_running_loop().create_task(tv.write())
            while (await receive())["type"] != "websocket.disconnect":
                pass
            writer.cancel()
            return
        n = int(scope["path"].rsplit("/", 1)[1])
        if direct is not None:

            def on_frame(text: str | bytes) -> None:
                tv = tvs[n % len(tvs)]
                tv.waiting.append(text if isinstance(text, str) else text.decode())
                tv.ready.set()

            direct.take(on_frame)
            await receive()  # the end of the connection
            return
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            tv = tvs[n % len(tvs)]
            tv.waiting.append(message.get("text") or "")
            tv.ready.set()

    async def main() -> None:
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws=direct_protocol(uncompressed=("/in/", "/tv")) if implementation == "hub-protocol" else implementation,  # type: ignore[arg-type]
            ws_per_message_deflate=deflate,
        )
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        await uvicorn.Server(config).serve(sockets=[sock])

    uvloop.run(main())


async def drive(port: int, phones: int, tvs: int, rate: float, seconds: float, deflate: bool) -> dict[str, float]:
    received = [0, 0]  # frames, messages

    def on_tv(payload: bytes) -> None:
        received[0] += payload.count(b'"seq"')
        received[1] += 1

    screens = [await wire_connect("127.0.0.1", port, "/tv", on_tv) for _ in range(tvs)]
    # As a browser does: the phones offer permessage-deflate (a fresh context a message, the cheapest for both).
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_no_context_takeover; server_no_context_takeover"}
    headers = offer if deflate else None
    pads = [await wire_connect("127.0.0.1", port, f"/in/{n}", lambda _: None, headers) for n in range(phones)]
    await asyncio.sleep(0.5)
    spacing, total, sent = 1.0 / (rate * phones), int(seconds * rate * phones), 0
    start = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - start) / spacing))
        while sent < due:
            frame = b'{"type":"input","seq":%d,"t_sent":%.3f,"buttons":5,"axes":[0.5,-0.25]}' % (sent, now_ms())
            if deflate:  # RSV1 marks a compressed message; the deflate stream's sync tail is left out (RFC 7692)
                packer = zlib.compressobj(wbits=-15)
                pads[sent % phones].send((packer.compress(frame) + packer.flush(zlib.Z_SYNC_FLUSH))[:-4], 0x41)
            else:
                pads[sent % phones].send(frame)
            sent += 1
        await asyncio.sleep(0.0005)
    await asyncio.sleep(0.5)
    for client in (*pads, *screens):
        if client.transport is not None:
            client.transport.close()
    return {"sent": sent, "frames": received[0], "messages": received[1]}


def measure(
    implementation: str, batch: bool, deflate: bool, phones: int, tvs: int, rate: float, seconds: float
) -> dict[str, Any]:
    port = free_port()
    server = mp.get_context("fork").Process(
        target=server_main, args=(port, implementation, batch, deflate), daemon=True
    )
    server.start()
    try:
        wait_port(port, 30)
        cpu, wall, waited = cpu_seconds(server.pid or 0), time.perf_counter(), cpu_pressure_us()
        counts = asyncio.run(drive(port, phones, tvs, rate, seconds, deflate))
        cpu, wall = cpu_seconds(server.pid or 0) - cpu, time.perf_counter() - wall
        pressure = (cpu_pressure_us() - waited) / 1e6 / wall
    finally:
        server.kill()
        server.join(5)
    frames = max(1, counts["frames"])
    return {
        **counts,
        "us": cpu / frames * 1e6,
        "server_cpu": cpu / wall,
        "batch": counts["frames"] / max(1, counts["messages"]),
        "pressure": pressure,
    }


def main(
    phones: int = typer.Option(300, help="phone connections"),
    tvs: int = typer.Option(10, help="TV connections (the phones are spread over them)"),
    rate: float = typer.Option(60.0, help="frames a second per phone"),
    seconds: float = typer.Option(8.0, help="length of each run"),
    implementations: str = typer.Option(
        ",".join(IMPLEMENTATIONS), help="uvicorn `ws` settings to compare, and `asyncio-protocol` (no ASGI)"
    ),
    deflate: bool = typer.Option(False, help="also: the phones' frames compressed (permessage-deflate, as browsers)"),
) -> None:
    table = Table(title=f"{phones} phones → {tvs} TVs at {rate:g} Hz through bare uvicorn, {seconds:g} s each")
    for column in ["ws", "to the TVs", "phones' frames", "frames sent", "on the TVs", "frames/TV msg", "server CPU"]:
        table.add_column(column, justify="right")
    for column in ["µs/frame", "CPU pressure"]:
        table.add_column(column, justify="right")
    runs = [(name, batch, False) for name in implementations.split(",") for batch in (False, True)]
    runs += [(name, True, True) for name in implementations.split(",") if deflate and name != "asyncio-protocol"]
    for implementation, batch, compressed in runs:
        row = measure(implementation, batch, compressed, phones, tvs, rate, seconds)
        label = (
            f"{implementation}, {'batches' if batch else 'a message a frame'}, {'deflate' if compressed else 'plain'}"
        )
        console.print(f"{label}: {row['us']:.1f} µs a frame, CPU pressure {row['pressure']:.0%}")
        table.add_row(
            implementation,
            "batches" if batch else "a message a frame",
            "deflate" if compressed else "plain",
            str(row["sent"]),
            str(row["frames"]),
            f"{row['batch']:.1f}",
            f"{row['server_cpu']:.0%}",
            f"{row['us']:.1f}",
            f"{row['pressure']:.0%}",
        )
    console.print(table)
    console.print(f"machine: {machine()}; server and load generator not pinned (pid {os.getpid()} drives)")
    console.print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    typer.run(main)
