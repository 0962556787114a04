"""What the HTTP load generators share: a bare HTTP/1.1 client on asyncio protocols (httpx costs more CPU per
request than the hub under test), percentiles, CPU accounting of the hub and the machine, and py-spy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- a bare HTTP/1.1 client ---------------------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight, parsed in ``data_received``.

    The load generator shares the 2 cores with the hub, so it must cost far less per request than the hub
    does: requests are pre-built bytes, and a response is complete once ``Content-Length`` bytes have come.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            self._fail(ValueError("a response without Content-Length"))
            return
        stop = head.find(b"\r\n", start + 2)
        total = end + 4 + int(head[start + 17 : stop if stop >= 0 else None])
        if len(self.buffer) < total:
            return
        status, body = int(head[9:12]), bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the hub closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def build_request(method: str, path: str, token: str | None, body: bytes = b"") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def open_connections(port: int, count: int) -> list[Connection]:
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(count):
        _, protocol = await loop.create_connection(Connection, "127.0.0.1", port)
        connections.append(protocol)
    return connections


# -- measuring ----------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time spent by the whole machine (every core, every process, the kernel) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_idle_share(seconds: float = 2.0) -> float:
    busy, start = machine_cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    cores = os.cpu_count() or 1
    return 1 - (machine_cpu_seconds() - busy) / ((time.perf_counter() - start) * cores)


def hub_pid(root: int) -> int:
    """The hub's own process: ``root`` itself, or its child when the hub runs under py-spy."""
    pending = [root]
    while pending:
        pid = pending.pop(0)
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
            if b"tosplus" in words and b"serve" in words and not any(w.endswith(b"py-spy") for w in words):
                return pid
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                pending.extend(int(c) for c in children.read().split())
    return root


def py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the hub's threads into ``output`` (raw, one line per stack) until it gets SIGINT."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [binary, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--threads", "-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def warn_if_busy(console: Console) -> None:
    """Say how idle the machine is before a run, and warn when something else is using the CPU."""
    idle = machine_idle_share()
    console.print(f"machine idle before the run: {100 * idle:.0f} %")
    if idle < 0.9:
        console.print("[yellow]something else is using the CPU: these numbers will be low and noisy[/yellow]")
