"""Command round trip benchmark: API → device → result, at a fixed offered rate (open loop).

Each command is a real ``POST /api/v1/devices/{id}/commands`` that waits for the device's answer; devices in
another process answer at once. The floor measured in the same run is a bare ``GET /api/v1/hub`` at the
same rate (the HTTP stack alone).

    python bench/commands.py --rate 500 --seconds 10 --devices 20
    python bench/commands.py --broker mosquitto --db postgresql
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import hub_process, machine, mosquitto, postgres_database

console = Console()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Connection:
    """A bare HTTP/1.1 keep-alive connection: the load generator must cost far less than the hub it measures.

    (httpx spends more CPU per request than the hub does, which on a 2-core machine measures httpx.)
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload


async def open_loop(
    pool: asyncio.Queue[Connection], make_request: Any, rate: float, seconds: float, label: str
) -> tuple[list[float], int]:
    """Start one request every 1/rate s regardless of answers; returns latencies (ms) and failures."""
    latencies: list[float] = []
    failures = 0
    total = int(rate * seconds)

    async def one(i: int, scheduled: float) -> None:
        nonlocal failures
        connection = await pool.get()
        try:
            ok = await make_request(connection, i)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            ok = False
        finally:
            pool.put_nowait(connection)
        # Latency counts from when the request was due, so a queue in the generator is not hidden.
        if ok:
            latencies.append((time.perf_counter() - scheduled) * 1000)
        else:
            failures += 1

    tasks = []
    start = time.perf_counter()
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(label, total=total)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
            if i % 50 == 0:
                progress.update(task, completed=i + 1)
        await asyncio.gather(*tasks)
        progress.update(task, completed=total)
    return latencies, failures


def report(label: str, latencies: list[float], failures: int) -> str:
    if not latencies:
        return f"{label}: no successful requests ({failures} failed)"
    return (
        f"{label}: n={len(latencies)} failed={failures} p50={statistics.median(latencies):.1f} ms "
        f"p99={percentile(latencies, 0.99):.1f} ms max={max(latencies):.1f} ms"
    )


def main(
    rate: float = typer.Option(500.0, help="commands per second offered"),
    seconds: float = typer.Option(10.0),
    devices: int = typer.Option(20),
    broker: str = typer.Option("embedded", help="embedded or mosquitto"),
    db: str = typer.Option("sqlite", help="sqlite or postgresql"),
    connections: int = typer.Option(64, help="keep-alive HTTP connections of the load generator"),
) -> None:
    console.print(
        f"[bold]Command round trip[/bold] at {rate:g}/s for {seconds:g}s over {devices} devices, "
        f"broker={broker}, db={db}; machine: {machine()}"
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database_url = stack.enter_context(postgres_database()) if db == "postgresql" else ""
        broker_url = ""
        if broker == "mosquitto":
            broker_url = f"mqtt://127.0.0.1:{stack.enter_context(mosquitto(workdir))}"
        hub = stack.enter_context(hub_process(broker_url=broker_url, database_url=database_url))
        with hub.client() as api:
            created = api.post("/api/v1/devices/bulk", json={"product_id": "smart-tv", "count": devices}).json()
        creds = [f"{d['id']}:{d['secret']}" for d in created["devices"]]
        responder = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("responder.py")), "127.0.0.1", str(hub.mqtt_port), *creds],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert responder.stdout is not None and responder.stdout.readline().strip() == b"ready"
        time.sleep(1.0)  # presence: every device online
        ids = [d["id"] for d in created["devices"]]

        async def command(connection: Connection, i: int) -> bool:
            body = b'{"name":"set_channel","params":{"channel":%d}}' % (i % 999 + 1)
            status, payload = await connection.request("POST", f"/api/v1/devices/{ids[i % len(ids)]}/commands", body)
            return status == 200 and orjson.loads(payload)["state"] == "SUCCEEDED"

        async def floor(connection: Connection, i: int) -> bool:
            status, _ = await connection.request("GET", "/api/v1/hub")
            return status == 200

        async def run() -> tuple[tuple[list[float], int], tuple[list[float], int]]:
            pool: asyncio.Queue[Connection] = asyncio.Queue()
            port = int(hub.api.rsplit(":", 1)[1])
            for _ in range(connections):
                connection = Connection("127.0.0.1", port, hub.token)
                await connection.open()
                pool.put_nowait(connection)
            await open_loop(pool, floor, rate, 1.0, "warm-up")
            base = await open_loop(pool, floor, rate, seconds, "GET /hub (floor)")
            cmds = await open_loop(pool, command, rate, seconds, "commands")
            return base, cmds

        base, cmds = asyncio.run(run())
        responder.stdin.close()  # type: ignore[union-attr]
        responder.wait(10)
    console.print(report("floor GET /api/v1/hub", *base))
    console.print(report("[bold]command round trip[/bold]", *cmds))


if __name__ == "__main__":
    typer.run(main)
