"""Authorised API throughput: a person reads a device's twin and commands a device, through the full access path.

Sets up through the real API a person (sign-up, password grant) with a home and N smart TVs bound into it
(sticker binding codes), then measures with the person's access token (JWT check + home membership check):

- reads, ``GET /api/v1/devices/{id}/twin``: closed loop (C keep-alive connections as fast as the hub answers:
  requests/s) and open loop (a request starts every 1/rate s whether or not earlier ones have answered;
  latency counts from when the request was due);
- commands, ``POST /api/v1/devices/{id}/commands`` with ``"wait": true``, open loop; the devices run in another
  process (``bench/responder.py``) and answer at once.

References measured in the same run: the same read with the person's API key and with the operator token
(no membership lookup), the same command with the operator token, and the floor: the same ``GET`` without a
token (routing, the 401 problem document, the HTTP stack).

    python bench/api_auth.py
    python bench/api_auth.py --broker mosquitto --db postgresql
    python bench/api_auth.py --seconds 10 --rate 3000 --command-rate 500 --devices 50 --connections 32
    python bench/api_auth.py --profile profiles/   # py-spy (pip install py-spy) on the hub, a raw file per run

A table row's CPU columns say how busy the hub, this load generator and the rest of the machine were during
the run: on a shared 2-core machine a busy "rest" explains a bad p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RunningHub, hub_process, machine, mosquitto, postgres_database
from bench.loadgen import (
    Connection,
    build_request,
    cpu_seconds,
    hub_pid,
    machine_cpu_seconds,
    open_connections,
    percentile,
    py_spy,
    warn_if_busy,
)

console = Console(width=max(Console().width, 160))  # the results table needs the room, also in a log file

PRODUCT = "smart-tv"
ACTION = "set_channel"  # an action of the product: {"channel": 1..9999} → {"channel": n}
PASSWORD = "bench-password-1"


@dataclass
class Workload:
    """A set of pre-built requests, used in turn, and what counts as a good answer."""

    label: str
    caller: str
    requests: list[bytes]
    ok: Callable[[int, bytes], bool]


@dataclass
class Result:
    workload: Workload
    mode: str  # "closed" or "open"
    offered: float | None  # requests/s, open loop only
    width: int  # connections
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0
    hub_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0  # all cores: hub, load generator, devices, broker, database and anything else

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


class Bench:
    def __init__(self, connections: list[Connection], hub: int, progress: Progress, profile: Path | None) -> None:
        self.connections = connections
        self.hub = hub
        self.progress = progress
        self.profile = profile

    @contextlib.contextmanager
    def _measure(self, result: Result) -> Iterator[None]:
        spy = None
        if self.profile is not None:
            name = f"{result.mode}-{result.workload.label}-{result.workload.caller}".lower()
            spy = py_spy(self.hub, self.profile / ("".join(c if c.isalnum() else "-" for c in name) + ".raw"))
            time.sleep(0.5)  # attached before the first request
        hub0, client0, machine0 = cpu_seconds(self.hub), time.process_time(), machine_cpu_seconds()
        start = time.perf_counter()
        yield
        result.elapsed = time.perf_counter() - start
        result.hub_cpu_s = cpu_seconds(self.hub) - hub0
        result.client_cpu_s = time.process_time() - client0
        result.machine_cpu_s = machine_cpu_seconds() - machine0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)

    async def closed(self, workload: Workload, seconds: float, width: int) -> Result:
        """``width`` connections, each sending its next request as soon as the previous one is answered."""
        result = Result(workload, "closed", None, width)
        counter = itertools.count()
        task = self.progress.add_task(f"{workload.label} ({workload.caller}), closed loop", total=seconds)
        deadline = 0.0

        async def worker(connection: Connection) -> None:
            requests, ok, latencies = workload.requests, workload.ok, result.latencies
            while True:
                sent = time.perf_counter()
                if sent >= deadline:
                    return
                try:
                    status, body = await connection.request(requests[next(counter) % len(requests)])
                except (OSError, ValueError):
                    result.failures += 1
                    return
                if ok(status, body):
                    latencies.append((time.perf_counter() - sent) * 1000)
                else:
                    result.failures += 1

        async def ticker() -> None:
            started = time.perf_counter()
            while True:
                await asyncio.sleep(0.25)
                self.progress.update(task, completed=min(seconds, time.perf_counter() - started))

        tick = asyncio.create_task(ticker())
        with self._measure(result):
            deadline = time.perf_counter() + seconds
            workers = [worker(c) for c in self.connections[:width]]
            await asyncio.wait_for(asyncio.gather(*workers), seconds + 30)
        tick.cancel()
        self.progress.update(task, completed=seconds)
        return result

    async def open(self, workload: Workload, rate: float, seconds: float) -> Result:
        """A request every 1/rate s, whatever the answers; latency from when each was due.

        Every connection is a worker that takes the next due request; when all are busy, the next request waits
        for one to be free, and that wait is counted (a queue in the generator is not hidden).
        """
        result = Result(workload, "open", rate, len(self.connections))
        total = int(rate * seconds)
        counter = itertools.count()
        task = self.progress.add_task(f"{workload.label} ({workload.caller}), {rate:g}/s", total=total)
        start = 0.0

        async def worker(connection: Connection) -> None:
            requests, ok, latencies = workload.requests, workload.ok, result.latencies
            while (i := next(counter)) < total:
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    status, body = await connection.request(requests[i % len(requests)])
                except (OSError, ValueError):
                    return  # this connection is gone; the others take the rest
                if ok(status, body):
                    latencies.append((time.perf_counter() - due) * 1000)
                if i % 100 == 0:
                    self.progress.update(task, completed=i)

        with self._measure(result):
            start = time.perf_counter() + 0.01
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(worker(c) for c in self.connections)), 2 * seconds + 30)
        result.failures = total - len(result.latencies)  # refused, wrong, lost or never sent in time
        self.progress.update(task, completed=total)
        return result


# -- setting up through the API -----------------------------------------------------------------------------------


@dataclass
class Setup:
    person_token: str
    api_key: str
    home_id: str
    devices: list[dict[str, str]]


def set_up(hub: RunningHub, count: int) -> Setup:
    """A person with a home and ``count`` devices bound into it, all through the API."""
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
        person = httpx.Client(base_url=hub.api, timeout=60, headers={"Authorization": f"Bearer {token}"})
        with person:
            home = person.post("/api/v1/homes", json={"name": "Bench home", "rooms": ["Living room"]})
            home.raise_for_status()
            home_id = home.json()["id"]
            created = operator.post("/api/v1/devices/bulk", json={"product_id": PRODUCT, "count": count + 1})
            created.raise_for_status()
            devices, stranger = created.json()["devices"][:count], created.json()["devices"][count]
            with Progress(*Progress.get_default_columns(), console=console, transient=True) as progress:
                task = progress.add_task("binding devices into the home", total=count)
                for device in devices:
                    code = operator.post(f"/api/v1/devices/{device['id']}/binding-codes", json={"valid_days": 1})
                    code.raise_for_status()
                    bound = person.post(f"/api/v1/homes/{home_id}/devices/bind", json={"code": code.json()["code"]})
                    bound.raise_for_status()
                    desired = {"power": True, "volume": 20, "input": "hdmi1", "picture_mode": "cinema"}
                    person.patch(f"/api/v1/devices/{device['id']}/twin/desired", json=desired).raise_for_status()
                    progress.advance(task)
            key = person.post("/api/v1/me/api-keys", json={"name": "bench"})
            key.raise_for_status()
            # The access check is really there: a device of no home of theirs is not found.
            refused = person.get(f"/api/v1/devices/{stranger['id']}/twin")
            if refused.status_code != 404:
                raise RuntimeError(f"a person read a device outside their home: {refused.status_code}")
            mine = person.get("/api/v1/me").json()["homes"]
            if [h["id"] for h in mine] != [home_id]:
                raise RuntimeError(f"unexpected homes: {mine}")
    return Setup(token, key.json()["key"], home_id, devices)


# -- the report ---------------------------------------------------------------------------------------------------


def table(results: list[Result]) -> Table:
    out = Table(
        title="Authorised API throughput",
        caption="CPU columns in % of one core; rest = devices, broker, database, kernel and any other process",
    )
    for name, justify in (
        ("request", "left"),
        ("caller", "left"),
        ("load", "left"),
        ("done", "right"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("max ms", "right"),
        ("errors", "right"),
        ("hub CPU", "right"),
        ("hub µs/req", "right"),
        ("client CPU", "right"),
        ("rest CPU", "right"),
    ):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        done = len(r.latencies)
        lat = r.latencies or [float("nan")]
        out.add_row(
            r.workload.label,
            r.workload.caller,
            f"closed, {r.width} conn" if r.mode == "closed" else f"open {r.offered:g}/s",
            f"{done:,}",
            f"[bold]{r.rate:,.0f}[/bold]" if r.mode == "closed" else f"{r.rate:,.0f}",
            f"{statistics.median(lat):.1f}",
            f"[bold]{percentile(lat, 0.99):.1f}[/bold]" if r.mode == "open" else f"{percentile(lat, 0.99):.1f}",
            f"{max(lat):.1f}",
            f"[red]{r.failures}[/red]" if r.failures else "0",
            f"{100 * r.hub_cpu_s / r.elapsed:.0f} %" if r.elapsed else "-",
            f"{1e6 * r.hub_cpu_s / done:.0f}" if done else "-",
            f"{100 * r.client_cpu_s / r.elapsed:.0f} %" if r.elapsed else "-",
            f"{100 * max(0.0, r.machine_cpu_s - r.hub_cpu_s - r.client_cpu_s) / r.elapsed:.0f} %" if r.elapsed else "-",
        )
    return out


# -- main ---------------------------------------------------------------------------------------------------------


def main(
    seconds: float = typer.Option(10.0, help="length of each measured run"),
    devices: int = typer.Option(50, help="devices bound into the person's home"),
    connections: int = typer.Option(32, help="keep-alive connections of the closed-loop runs"),
    open_connections_: int = typer.Option(
        64, "--open-connections", help="keep-alive connections the open-loop runs may use"
    ),
    rate: float = typer.Option(3000.0, help="reads per second offered in the open-loop runs"),
    command_rate: float = typer.Option(500.0, help="commands per second offered"),
    broker: str = typer.Option("embedded", help="embedded or mosquitto"),
    db: str = typer.Option("sqlite", help="sqlite or postgresql"),
    profile: Path | None = typer.Option(
        None, help="a folder: record the hub with py-spy during each measured run (slows the hub; not for results)"
    ),
) -> None:
    if seconds * 10 > 780:  # ten measured runs, all within one access token's 15 minutes
        raise typer.BadParameter("the person's access token lives 15 minutes: --seconds must be at most 78")
    console.print(
        f"[bold]Authorised API throughput[/bold]: {devices} {PRODUCT}s in a person's home, commands '{ACTION}', "
        f"broker={broker}, db={db}, {seconds:g}s per run; machine: {machine()}"
    )
    warn_if_busy(console)
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database_url = stack.enter_context(postgres_database()) if db == "postgresql" else ""
        broker_url = f"mqtt://127.0.0.1:{stack.enter_context(mosquitto(workdir))}" if broker == "mosquitto" else ""
        hub = stack.enter_context(hub_process(broker_url=broker_url, database_url=database_url))
        setup = set_up(hub, devices)
        creds = [f"{d['id']}:{d['secret']}" for d in setup.devices]
        responder = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("responder.py")), "127.0.0.1", str(hub.mqtt_port), *creds],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        stack.callback(responder.wait, 10)
        stack.callback(lambda: responder.stdin.close() if responder.stdin else None)
        assert responder.stdout is not None and responder.stdout.readline().strip() == b"ready"
        time.sleep(1.0)  # presence: every device online

        ids = [d["id"] for d in setup.devices]

        def reads(token: str | None) -> list[bytes]:
            return [build_request("GET", f"/api/v1/devices/{i}/twin", token) for i in ids]

        def commands(token: str) -> list[bytes]:
            return [
                build_request(
                    "POST",
                    f"/api/v1/devices/{ids[n % len(ids)]}/commands",
                    token,
                    b'{"name":"%s","params":{"channel":%d},"wait":true}' % (ACTION.encode(), n % 999 + 1),
                )
                for n in range(len(ids) * 7)
            ]

        def status(expected: int) -> Callable[[int, bytes], bool]:
            return lambda code, _body: code == expected

        def succeeded(code: int, body: bytes) -> bool:
            return code == 200 and b'"state":"SUCCEEDED"' in body

        read_loads = [
            Workload("GET twin", "no token (401)", reads(None), status(401)),
            Workload("GET twin", "operator token", reads(hub.token), status(200)),
            Workload("GET twin", "person's API key", reads(setup.api_key), status(200)),
            Workload("GET twin", "person's JWT", reads(setup.person_token), status(200)),
        ]
        command_loads = [
            Workload("POST command", "operator token", commands(hub.token), succeeded),
            Workload("POST command", "person's JWT", commands(setup.person_token), succeeded),
        ]
        port = int(hub.api.rsplit(":", 1)[1])
        pid = hub_pid(hub.process.pid)

        async def run() -> None:
            pool = await open_connections(port, max(connections, open_connections_))
            columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                bench = Bench(pool, pid, progress, profile)
                warm = progress.add_task("warm-up", total=len(read_loads) + len(command_loads))
                for load in read_loads + command_loads:
                    for raw in load.requests[: len(ids)]:
                        status_code, body = await pool[0].request(raw)
                        if not load.ok(status_code, body):
                            raise RuntimeError(f"warm-up: {load.label} ({load.caller}) answered {status_code} {body!r}")
                    progress.advance(warm)
                for load in read_loads:
                    await bench.closed(load, 1.0, connections)  # warm-up of the loop itself, not recorded
                for load in read_loads:
                    results.append(await bench.closed(load, seconds, connections))
                for load in read_loads:
                    results.append(await bench.open(load, rate, seconds))
                for load in command_loads:
                    results.append(await bench.open(load, command_rate, seconds))
            for connection in pool:
                connection.close()

        try:
            import uvloop
        except ImportError:
            asyncio.run(run())
        else:
            uvloop.run(run())

    console.print(table(results))
    failures = sum(r.failures for r in results)
    target = next(r for r in results if r.mode == "open" and r.workload is read_loads[-1])
    p99 = percentile(target.latencies, 0.99) if target.latencies else float("inf")
    met = rate >= 3000 and target.rate >= 0.97 * rate and p99 < 20 and not target.failures
    console.print(
        f"Person's JWT read, open loop at {rate:g}/s offered: {target.rate:,.0f}/s answered, p99 {p99:.1f} ms. "
        f"Target (≥ 3,000 authorised reads/s with p99 < 20 ms): {'met' if met else '[bold]not met[/bold]'}."
    )
    if failures:
        console.print(f"[red]{failures} requests failed[/red]")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
