"""Memory of the hub with N devices connected (default 10,000).

The hub runs in its own process; its RSS is read from ``/proc`` right after start, after bulk-creating N
devices, and after all N are connected over MQTT and the hub counts them online. The devices are simulated
in one or two *other* processes (``connect-clients`` below), each device a bare asyncio MQTT 3.1.1
connection (a few KB of client memory, so 10,000 fit in one process and the client costs little CPU):

* CONNECT with the real credentials (client id = user name = device id, password = secret), clean session,
  keep-alive 300 s, last will ``offline`` (retained, QoS 1) on ``tos/v1/{id}/status``, as the SDK does;
* SUBSCRIBE to the same filters the SDK subscribes to (``twin/desired``, ``twin/delta``, ``commands/+``,
  ``errors``, QoS 1), so the broker holds the same per-device subscription state as for real devices;
* PUBLISH ``online`` (retained, QoS 1) on ``status`` and one ``{"occupied": true}`` (QoS 1) on ``telemetry``;
* then idle: it answers whatever the hub sends (PUBACK) and pings every keep-alive.

With ``--broker mosquitto`` the devices connect to a private Mosquitto (anonymous, as for the other
benchmarks) and that Mosquitto's RSS is reported too.

    python bench/memory.py --devices 10000
    python bench/memory.py --devices 10000 --broker mosquitto
    python bench/memory.py --devices 10000 --no-subscribe   # devices that only publish
    python bench/memory.py --devices 2000 --db postgresql
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import hub_process, machine, mosquitto, postgres_database

console = Console()
BULK_MAX = 10_000  # the most devices one POST /devices/bulk creates
KEEPALIVE_S = 300
FD_MARGIN = 1024  # open files a process needs besides its MQTT sockets


# --- helpers ------------------------------------------------------------------------------------------------


def proc_status(pid: int, field: str) -> float:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS, VmHWM) in MB; 0 if the process is gone."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_files(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return -1


def max_open_files(pid: int) -> str:
    """Soft/hard limit of open files of a running process, from ``/proc/<pid>/limits``."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft}/{hard}"
    return "?"


def raise_fd_limit(wanted: int) -> tuple[int, int]:
    """Raise this process's soft limit of open files towards ``wanted`` (the hub, Mosquitto and the client
    processes started afterwards inherit it); returns the (soft, hard) limits now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def find_pid(needle: str) -> int | None:
    """The pid of the process whose command line contains ``needle`` (the private Mosquitto's config file)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as cmdline:
            if needle.encode() in cmdline.read():
                return int(entry)
    return None


# --- the simulated devices (runs in the client processes) ---------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(device_id: str, secret: str) -> bytes:
    # user name, password, will retain, will QoS 1, will flag, clean session
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    body = (
        _str("MQTT")
        + bytes([4, flags])
        + KEEPALIVE_S.to_bytes(2, "big")
        + _str(device_id)
        + _str(f"tos/v1/{device_id}/status")
        + _str(b"offline")
        + _str(device_id)
        + _str(secret)
    )
    return _packet(0x10, body)


def subscribe_packet(pid: int, filters: list[str]) -> bytes:
    return _packet(0x82, pid.to_bytes(2, "big") + b"".join(_str(f) + b"\x01" for f in filters))


def publish_packet(pid: int, topic: str, payload: bytes, *, retain: bool = False) -> bytes:
    return _packet(0x32 | (0x01 if retain else 0), _str(topic) + pid.to_bytes(2, "big") + payload)


class Refused(Exception):
    pass


CLOSED = object()  # what a pending wait for an acknowledgement gets when the broker closes the connection


class ClientStats:
    def __init__(self) -> None:
        self.connected = 0
        self.lost = 0
        self.received = 0
        self.errors: Counter[str] = Counter()
        self.first: float | None = None
        self.last: float | None = None


class Device(asyncio.Protocol):
    """One device's MQTT connection: just enough of MQTT 3.1.1 for the handshake and for idling."""

    def __init__(self, stats: ClientStats) -> None:
        self.stats = stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiters: dict[int, asyncio.Future[Any]] = {}  # CONNACK under 0, acks under their packet id
        self.ready = False
        self.ping: asyncio.TimerHandle | None = None

    def expect(self, key: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters[key] = future
        return future

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ping is not None:
            self.ping.cancel()
        for future in self.waiters.values():
            if not future.done():
                future.set_result(CLOSED)
        self.waiters.clear()
        if self.ready:
            self.ready = False
            self.stats.lost += 1
            self.stats.errors["lost after connecting"] += 1

    def _resolve(self, key: int, value: Any) -> None:
        future = self.waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        buf = self.buffer
        while len(buf) >= 2:
            length, multiplier, i = 0, 1, 1
            while True:
                if i >= len(buf):
                    return  # remaining length incomplete
                byte = buf[i]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                i += 1
                if not byte & 0x80:
                    break
            if len(buf) < i + length:
                return
            first, body = buf[0], bytes(buf[i : i + length])
            del buf[: i + length]
            self._handle(first, body)

    def _handle(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == 2:  # CONNACK
            self._resolve(0, body[1])
        elif kind in (4, 9):  # PUBACK, SUBACK
            self._resolve(int.from_bytes(body[:2], "big"), body[2:])
        elif kind == 3:  # PUBLISH from the hub (twin, commands): acknowledge
            self.stats.received += 1
            qos = (first >> 1) & 3
            if qos:
                topic_end = 2 + int.from_bytes(body[:2], "big")
                pid = body[topic_end : topic_end + 2]
                assert self.transport is not None
                self.transport.write((b"\x40\x02" if qos == 1 else b"\x50\x02") + pid)
        elif kind == 6:  # PUBREL
            assert self.transport is not None
            self.transport.write(b"\x70\x02" + body[:2])

    def keep_alive(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(b"\xc0\x00")  # PINGREQ
        self.ping = asyncio.get_running_loop().call_later(KEEPALIVE_S * 0.75, self.keep_alive)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.ready = False
            self.transport.write(b"\xe0\x00")  # DISCONNECT: a clean close, no last will
            self.transport.close()


def _seconds(since: float) -> str:
    """A duration rounded for grouping errors: 0-1 s, 1-5 s, 5-10 s, ... ."""
    elapsed = time.monotonic() - since
    for bound in (1, 5, 10, 15, 20, 30):
        if elapsed < bound:
            return f"< {bound} s"
    return ">= 30 s"


async def handshake(
    host: str, port: int, device_id: str, secret: str, stats: ClientStats, timeout: float, subscribe: bool
) -> Device:
    loop = asyncio.get_running_loop()
    try:
        _, device = await asyncio.wait_for(loop.create_connection(lambda: Device(stats), host, port), timeout)
    except TimeoutError:  # e.g. the broker's listen backlog is full and it does not accept fast enough
        raise TimeoutError(f"TCP connection not established within {timeout:.0f} s") from None
    assert device.transport is not None
    opened = time.monotonic()
    try:
        connack = device.expect(0)
        device.transport.write(connect_packet(device_id, secret))
        try:
            code = await asyncio.wait_for(connack, timeout)
        except TimeoutError:
            raise TimeoutError(f"no CONNACK within {timeout:.0f} s") from None
        if code is CLOSED:
            raise ConnectionError(f"closed by the broker before the CONNACK, after {_seconds(opened)}")
        if code:
            raise Refused(f"CONNACK {code}")
        base = f"tos/v1/{device_id}/"
        acks = [device.expect(2), device.expect(3)]
        if subscribe:  # the SDK's filters (DeviceClient._session)
            acks.append(device.expect(1))
            device.transport.write(
                subscribe_packet(1, [base + "twin/desired", base + "twin/delta", base + "commands/+", base + "errors"])
            )
        device.transport.write(
            publish_packet(2, base + "status", b"online", retain=True)
            + publish_packet(3, base + "telemetry", b'{"occupied": true}')
        )
        _, pending = await asyncio.wait(acks, timeout=timeout)
        if pending:
            raise TimeoutError(f"no SUBACK/PUBACK within {timeout:.0f} s after the CONNACK")
        if any(ack.result() is CLOSED for ack in acks):
            raise ConnectionError(f"closed by the broker after the CONNACK, after {_seconds(opened)}")
    except BaseException:
        device.transport.abort()
        raise
    device.ready = True
    device.ping = loop.call_later(KEEPALIVE_S * random.uniform(0.5, 0.75), device.keep_alive)
    return device


async def run_clients(
    host: str, port: int, credentials: list[tuple[str, str]], concurrency: int, timeout: float, subscribe: bool
) -> None:
    stats = ClientStats()
    gate = asyncio.Semaphore(concurrency)
    devices: list[Device] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stdin_readable() -> None:  # the benchmark closes our stdin to stop us
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_readable)

    def report(final: bool = False) -> None:
        line = {
            "connected": stats.connected,
            "lost": stats.lost,
            "received": stats.received,
            "errors": dict(stats.errors),
            "first": stats.first,
            "last": stats.last,
            "final": final,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    async def one(device_id: str, secret: str) -> None:
        attempt = 0
        while not stop.is_set():
            async with gate:
                if stats.first is None:
                    stats.first = time.time()
                try:
                    devices.append(await handshake(host, port, device_id, secret, stats, timeout, subscribe))
                    stats.connected += 1
                    stats.last = time.time()
                    return
                except (OSError, TimeoutError, Refused) as exc:
                    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    stats.errors[reason[:120]] += 1
            attempt += 1
            await asyncio.sleep(min(10.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))

    tasks = [asyncio.create_task(one(d, s)) for d, s in credentials]
    while not stop.is_set():
        report(final=False)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    report(final=True)
    for device in devices:
        device.close()
    await asyncio.sleep(0.5)  # let the DISCONNECTs go out


def connect_clients(argv: list[str]) -> None:
    """``memory.py connect-clients HOST PORT CREDENTIALS_FILE CONCURRENCY SUBSCRIBE(0|1)``: connect the devices
    listed (``id:secret`` a line), print progress as JSON lines, stay connected until stdin closes."""
    host, port, path, concurrency, subscribe = argv[0], int(argv[1]), Path(argv[2]), int(argv[3]), argv[4] == "1"
    credentials = [tuple(line.split(":", 1)) for line in path.read_text().split()]
    raise_fd_limit(len(credentials) + FD_MARGIN)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_clients(host, port, credentials, concurrency, timeout=30.0, subscribe=subscribe))  # type: ignore[arg-type]


# --- the benchmark (main process) ---------------------------------------------------------------------------


class ClientProcesses:
    """The client processes and the latest progress line of each."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: list[str],
        processes: int,
        concurrency: int,
        subscribe: bool,
        workdir: Path,
    ) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.latest: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []
        groups = [credentials[i::processes] for i in range(processes)]
        for n, group in enumerate(g for g in groups if g):
            path = workdir / f"credentials-{n}.txt"
            path.write_text("\n".join(group) + "\n")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "connect-clients",
                    host,
                    str(port),
                    str(path),
                    str(max(1, concurrency // processes)),
                    "1" if subscribe else "0",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self.procs.append(proc)
            self.latest.append({"connected": 0, "lost": 0, "received": 0, "errors": {}})
            thread = threading.Thread(target=self._read, args=(n, proc), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _read(self, n: int, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                self.latest[n] = json.loads(line)

    def total(self, key: str) -> int:
        return sum(int(s.get(key) or 0) for s in self.latest)

    def errors(self) -> Counter[str]:
        errors: Counter[str] = Counter()
        for s in self.latest:
            errors.update(s.get("errors") or {})
        return errors

    def span(self) -> float | None:
        """Seconds from the first connection attempt to the last completed handshake, over all processes."""
        firsts = [s["first"] for s in self.latest if s.get("first")]
        lasts = [s["last"] for s in self.latest if s.get("last")]
        return max(lasts) - min(firsts) if firsts and lasts else None

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def rss_mb(self) -> float:
        return sum(proc_status(p.pid, "VmRSS") for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self.threads:
            thread.join(2)


@contextlib.contextmanager
def client_processes(*args: Any) -> Iterator[ClientProcesses]:
    clients = ClientProcesses(*args)
    try:
        yield clients
    finally:
        clients.stop()


def create_devices(api: Any, n: int) -> list[str]:
    credentials: list[str] = []
    with Progress(
        TextColumn("creating devices"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("create", total=n)
        while len(credentials) < n:
            count = min(BULK_MAX, n - len(credentials))
            response = api.post("/api/v1/devices/bulk", json={"product_id": "parking-sensor", "count": count})
            response.raise_for_status()
            credentials += [f"{d['id']}:{d['secret']}" for d in response.json()["devices"]]
            progress.update(task, completed=len(credentials))
    return credentials


def main(
    devices: int = typer.Option(10_000, help="devices to create and connect"),
    broker: str = typer.Option("embedded", help="embedded (amqtt in the hub) or mosquitto (a private one)"),
    db: str = typer.Option("sqlite", help="sqlite or postgresql"),
    concurrency: int = typer.Option(200, help="connections being set up at once (over all client processes)"),
    processes: int = typer.Option(1, help="client processes (1 or 2)"),
    timeout: float = typer.Option(180.0, help="seconds for all devices to be online at the hub"),
    settle: float = typer.Option(5.0, help="seconds of RSS sampling once all are online"),
    subscribe: bool = typer.Option(
        True,
        help="each device subscribes to the SDK's 4 filters (twin/desired, "
        "twin/delta, commands/+, errors), as real devices do",
    ),
) -> None:
    if broker not in ("embedded", "mosquitto") or db not in ("sqlite", "postgresql"):
        raise typer.BadParameter("--broker embedded|mosquitto, --db sqlite|postgresql")
    # Every device is a socket in the client process and, with the embedded broker, one in the hub; the hub,
    # Mosquitto and the client processes inherit this process's limit.
    soft, hard = raise_fd_limit(devices + FD_MARGIN)
    console.print(
        f"[bold]Memory benchmark[/bold]: {devices:,} devices connected, broker={broker}, db={db}, "
        f"{'4 subscriptions' if subscribe else 'no subscriptions'} per device; "
        f"machine: {machine()}; open files limit {soft}/{hard}"
    )
    if 0 <= soft < devices + FD_MARGIN:
        console.print(
            f"[red]the open files limit ({soft}) is below {devices + FD_MARGIN}: expect refused "
            "connections (raise the hard limit, e.g. ulimit -Hn, as root)[/red]"
        )
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tosplus-memory-")))
        database_url = stack.enter_context(postgres_database()) if db == "postgresql" else ""
        broker_url, mosquitto_pid, port = "", None, 0
        if broker == "mosquitto":
            port = stack.enter_context(mosquitto(workdir))
            broker_url = f"mqtt://127.0.0.1:{port}"
            mosquitto_pid = find_pid(str(workdir / "mosquitto.conf"))
            if mosquitto_pid:
                result["mosquitto_start"] = proc_status(mosquitto_pid, "VmRSS")
        hub = stack.enter_context(hub_process(broker_url=broker_url, database_url=database_url))
        pid = hub.process.pid
        result["start"] = hub.rss_mb()
        result["hub_fd_limit"] = max_open_files(pid)
        with hub.client() as api:
            credentials = create_devices(api, devices)
            result["created"] = hub.rss_mb()
            port = port or hub.mqtt_port
            clients = stack.enter_context(
                client_processes("127.0.0.1", port, credentials, max(1, processes), concurrency, subscribe, workdir)
            )
            started = time.monotonic()
            online, ingest = 0, {"accepted": 0, "queued": 0}
            all_online_s: float | None = None
            errors_shown: Counter[str] = Counter()
            timeline: list[tuple[float, int, int, int, float]] = []  # s, connected, online, ingested, RSS MB
            with Progress(
                TextColumn("{task.description:<22}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"),
                console=console,
            ) as progress:
                connecting = progress.add_task("devices connected", total=devices, note="")
                at_hub = progress.add_task("online at the hub", total=devices, note="")
                while time.monotonic() - started < timeout:
                    time.sleep(0.5)
                    with contextlib.suppress(Exception):  # a hub busy accepting may answer late: try again
                        info = api.get("/api/v1/hub", timeout=10).json()
                        online, ingest = info["devices"]["online"], info["ingest"]
                    errors = clients.errors()
                    for reason, count in (errors - errors_shown).items():
                        progress.console.print(
                            f"[yellow]{count} x {reason}[/yellow] (at {clients.total('connected'):,} connected)"
                        )
                    errors_shown = errors
                    progress.update(
                        connecting, completed=clients.total("connected"), note=f"hub RSS {hub.rss_mb():,.0f} MB"
                    )
                    progress.update(at_hub, completed=online, note=f"{open_files(pid):,} open files in the hub")
                    if hub.process.poll() is not None:
                        progress.console.print(f"[red]the hub exited with code {hub.process.returncode}[/red]")
                        break
                    if not clients.alive():
                        progress.console.print("[red]a client process exited[/red]")
                        break
                    elapsed = time.monotonic() - started
                    if not timeline or elapsed - timeline[-1][0] >= 15:
                        timeline.append((elapsed, clients.total("connected"), online, ingest["accepted"], hub.rss_mb()))
                    if online >= devices and clients.total("connected") >= devices:
                        all_online_s = time.monotonic() - started
                        break
            result.update(
                timeline=timeline,
                subscribe=subscribe,
                online=online,
                connected=clients.total("connected"),
                all_online_s=all_online_s,
                handshakes_s=clients.span(),
                errors=clients.errors(),
            )
            if all_online_s is not None:
                samples = []
                with Progress(TextColumn("sampling RSS"), BarColumn(), TimeElapsedColumn(), console=console) as p:
                    task = p.add_task("rss", total=settle)
                    t0 = time.monotonic()
                    while (elapsed := time.monotonic() - t0) < settle:
                        samples.append(hub.rss_mb())
                        p.update(task, completed=elapsed)
                        time.sleep(0.5)
                result["samples"] = samples
                result["connected_rss"] = statistics.median(samples[len(samples) // 2 :])
                if mosquitto_pid:
                    result["mosquitto_connected"] = proc_status(mosquitto_pid, "VmRSS")
            result["peak"] = proc_status(pid, "VmHWM")
            result["hub_fds"] = open_files(pid)
            result["clients_rss"] = clients.rss_mb()
            result["lost"] = clients.total("lost")
            result["received"] = clients.total("received")
        console.print("stopping the clients, the hub" + (" and Mosquitto" if broker == "mosquitto" else "") + "…")
    ok = summary(devices, broker, db, result)
    if not ok:
        raise typer.Exit(1)


def summary(devices: int, broker: str, db: str, r: dict[str, Any]) -> bool:
    ok = r.get("all_online_s") is not None and not r.get("lost")
    console.rule("[bold]Memory of the hub with devices connected")
    out(f"machine: {machine()}")
    out(
        f"devices: {devices:,}; broker: {broker}; database: {db}; subscriptions per device: "
        f"{4 if r['subscribe'] else 0}; "
        f"hub open files limit (soft/hard): {r['hub_fd_limit']}"
    )
    out(f"hub RSS at start:            {r['start']:8.1f} MB")
    per_created = (r["created"] - r["start"]) * 1024 / devices
    out(
        f"hub RSS after creating them: {r['created']:8.1f} MB  (+{r['created'] - r['start']:.1f} MB, "
        f"{per_created:.1f} KB per device)"
    )
    if "connected_rss" in r:
        grown = r["connected_rss"] - r["created"]
        samples = r["samples"]
        out(
            f"hub RSS with all connected:  {r['connected_rss']:8.1f} MB  (+{grown:.1f} MB; steady: "
            f"min {min(samples):.1f} / max {max(samples):.1f} MB over {len(samples)} samples)"
        )
        out(
            f"  per connected device: [bold]{grown * 1024 / devices:.1f} KB[/bold] = "
            f"[bold]{grown * 1000 / devices:.1f} MB per 1,000 devices[/bold] "
            f"(total over start: {(r['connected_rss'] - r['start']) * 1000 / devices:.1f} MB per 1,000)"
        )
    out(f"hub peak RSS (VmHWM):        {r['peak']:8.1f} MB; open files in the hub: {r['hub_fds']:,}")
    if "mosquitto_start" in r:
        line = f"Mosquitto RSS: {r['mosquitto_start']:.1f} MB at start"
        if "mosquitto_connected" in r:
            grown = r["mosquitto_connected"] - r["mosquitto_start"]
            line += (
                f", {r['mosquitto_connected']:.1f} MB with all connected (+{grown:.1f} MB, "
                f"{grown * 1024 / devices:.1f} KB per device)"
            )
        out(line)
    if r.get("handshakes_s"):
        out(
            f"connect rate: [bold]{r['connected'] / r['handshakes_s']:,.0f} devices/s[/bold] "
            f"({r['connected']:,} handshakes — CONNECT{', SUBSCRIBE' if r['subscribe'] else ''}, 2 x PUBLISH "
            f"acknowledged — in "
            f"{r['handshakes_s']:.1f} s)"
        )
    if r.get("all_online_s") is not None:
        out(
            f"all {devices:,} online at the hub {r['all_online_s']:.1f} s after the clients started "
            f"({devices / r['all_online_s']:,.0f} devices/s end to end)"
        )
    out(f"client processes RSS: {r['clients_rss']:.1f} MB; messages the hub sent to the devices: {r['received']:,}")
    if not ok or len(r["timeline"]) > 2:
        out(
            "timeline (s: connected / online at the hub / messages ingested by the hub / hub RSS): "
            + ", ".join(f"{t:.0f}: {c:,}/{o:,}/{i:,}/{m:.0f} MB" for t, c, o, i, m in r["timeline"][1:])
        )
    if r["errors"]:
        out(
            "connection attempts that failed (retried): "
            + "; ".join(f"{n} x {reason}" for reason, n in r["errors"].most_common())
        )
    if not ok:
        out(
            f"[red]FAILED: {r['connected']:,} connected, {r['online']:,} online at the hub, "
            f"{r.get('lost', 0)} connections lost[/red]"
        )
    return ok


def out(text: str) -> None:
    console.print(text, soft_wrap=True)  # one line per fact, also when the output is not a terminal


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "connect-clients":
        connect_clients(sys.argv[2:])
    else:
        typer.run(main)
