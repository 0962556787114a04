"""Telemetry ingest benchmark: N devices publish through a broker; every message must be persisted.

Reports messages/s persisted by the hub next to the broker's raw forwarding rate measured in the same run
(the same publishers, one bare paho subscriber that only counts). Each telemetry message carries two values
(power_w, on), i.e. two rows in the time-series table.

    python bench/ingest.py --broker mosquitto --db sqlite --devices 50 --messages 2000
    python bench/ingest.py --broker mosquitto --db postgresql
    python bench/ingest.py --broker embedded
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import typer
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import hub_process, machine, mosquitto, postgres_database

console = Console()
PUBLISHERS = Path(__file__).with_name("publishers.py")


def publish(port: int, devices: list[str], per_device: int, qos: int, processes: int) -> float:
    """Start publisher processes (devices split among them); returns the wall time until all are acknowledged."""
    groups = [devices[i::processes] for i in range(processes)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(PUBLISHERS), "127.0.0.1", str(port), str(qos), str(per_device), *group],
            stdout=subprocess.PIPE,
        )
        for group in groups
        if group
    ]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - start


def raw_broker_rate(port: int, devices: list[str], per_device: int, qos: int, processes: int) -> float:
    """Messages/s one bare subscriber receives from the broker (the reference for the hub's rate)."""
    total = len(devices) * per_device
    received = 0
    done = threading.Event()

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal received
        received += 1
        if received >= total:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-subscriber", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("tos/v1/+/telemetry", qos=qos)
    sub.loop_start()
    time.sleep(0.5)
    start = time.perf_counter()
    publish(port, devices, per_device, qos, processes)
    done.wait(300)
    elapsed = time.perf_counter() - start
    sub.disconnect()
    sub.loop_stop()
    return received / elapsed


def drain_rate_raw(port: int, devices: list[str], per_device: int, qos: int, processes: int) -> float:
    """Reference for backlog mode: how fast a bare persistent subscriber drains the same backlog."""
    total = len(devices) * per_device
    received = 0
    done = threading.Event()
    first: list[float] = []

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal received
        if not first:
            first.append(time.perf_counter())
        received += 1
        if received >= total:
            done.set()

    def session() -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-raw-backlog", protocol=mqtt.MQTTv311, clean_session=False
        )
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        return client

    sub = session()
    sub.subscribe("tos/v1/+/telemetry", qos=qos)
    sub.loop_start()
    time.sleep(0.5)
    sub.disconnect()
    sub.loop_stop()
    publish(port, devices, per_device, qos, processes)
    sub = session()
    sub.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - first[0]
    sub.disconnect()
    sub.loop_stop()
    return received / elapsed


def wait_persisted(api: httpx.Client, total: int, first: int, label: str, limit_s: float = 600) -> int:
    """Poll the hub's ingest counter (with a progress bar) until ``total`` messages are stored."""
    accepted = first
    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total, completed=first)
        deadline = time.monotonic() + limit_s
        while accepted < total and time.monotonic() < deadline:
            time.sleep(0.1)
            info = api.get("/api/v1/hub").json()["ingest"]
            accepted = info["accepted"]
            progress.update(task, completed=accepted)
            if info["refused"]:
                console.print(f"[red]{info['refused']} refused[/red]")
    return accepted


def check_queryable(api: httpx.Client, devices: list[dict[str, Any]], messages: int) -> None:
    """Every message must be queryable: count the stored points of a sample of devices."""
    for device in devices[:: max(1, len(devices) // 10)]:
        points = api.get(
            f"/api/v1/devices/{device['id']}/telemetry", params={"key": "power_w", "from": 0, "limit": 10000}
        ).json()["points"]
        assert len(points) == min(messages, 10000), (device["id"], len(points))


def main(
    broker: str = typer.Option("mosquitto", help="mosquitto (a private one) or embedded"),
    db: str = typer.Option("sqlite", help="sqlite or postgresql"),
    devices: int = typer.Option(50, help="simulated devices, one MQTT connection each"),
    messages: int = typer.Option(2000, help="messages per device"),
    qos: int = typer.Option(1),
    processes: int = typer.Option(2, help="publisher processes"),
    workers: int = typer.Option(0, help="hub ingest worker processes (TOSPLUS_INGEST_WORKERS)"),
    backlog: bool = typer.Option(
        False,
        help="publish while the hub is down, then time how fast it drains "
        "the broker's backlog (the hub's own capacity, without publishers on the CPU)",
    ),
) -> None:
    if backlog:
        run_backlog(db, devices, messages, qos, processes, workers)
        return
    total = devices * messages
    console.print(
        f"[bold]Ingest benchmark[/bold]: {devices} devices x {messages} messages = {total:,} "
        f"(QoS {qos}), broker={broker}, db={db}; machine: {machine()}"
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database_url = stack.enter_context(postgres_database()) if db == "postgresql" else ""
        broker_url, raw = "", None
        if broker == "mosquitto":
            port = stack.enter_context(mosquitto(workdir))
            broker_url = f"mqtt://127.0.0.1:{port}"
            raw = raw_broker_rate(port, [f"raw{i:05d}" for i in range(devices)], messages, qos, processes)
            console.print(f"broker raw forwarding rate (1 bare subscriber): [bold]{raw:,.0f} msg/s[/bold]")
        hub = stack.enter_context(
            hub_process(
                broker_url=broker_url, database_url=database_url, extra_env={"TOSPLUS_INGEST_WORKERS": str(workers)}
            )
        )
        with hub.client() as api:
            created = api.post("/api/v1/devices/bulk", json={"product_id": "smart-plug", "count": devices}).json()
            creds = [f"{d['id']}:{d['secret']}" for d in created["devices"]]
            port = hub.mqtt_port
            before = api.get("/api/v1/hub").json()["ingest"]["accepted"]
            start = time.perf_counter()
            thread = threading.Thread(target=publish, args=(port, creds, messages, qos, processes))
            thread.start()
            accepted = wait_persisted(api, before + total, before, "persisted") - before
            elapsed = time.perf_counter() - start
            thread.join()
            check_queryable(api, created["devices"], messages)
            rss = hub.rss_mb()
    rate = accepted / elapsed
    console.print(
        f"hub persisted [bold]{accepted:,}[/bold] messages ({2 * accepted:,} values) in {elapsed:.1f}s: "
        f"[bold green]{rate:,.0f} msg/s[/bold green]"
        + (f" = {rate / raw:.0%} of the broker's raw rate" if raw else "")
        + f"; hub RSS {rss:.0f} MB"
    )
    if accepted < total:
        console.print(f"[red]LOSS: {total - accepted} messages not persisted[/red]")
        raise typer.Exit(1)


def run_backlog(db: str, devices: int, messages: int, qos: int, processes: int, workers: int) -> None:
    total = devices * messages
    console.print(
        f"[bold]Ingest benchmark, backlog mode[/bold]: {devices} devices x {messages} messages = {total:,} "
        f"(QoS {qos}) queued in Mosquitto while the hub is down; db={db}; machine: {machine()}"
    )
    client_id = "bench-hub"
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database_url = stack.enter_context(postgres_database()) if db == "postgresql" else ""
        port = stack.enter_context(mosquitto(workdir))
        raw = drain_rate_raw(port, [f"raw{i:05d}" for i in range(devices)], messages, qos, processes)
        console.print(f"broker raw drain rate (1 bare persistent subscriber): [bold]{raw:,.0f} msg/s[/bold]")
        env = {
            "TOSPLUS_HUB_CLIENT_ID": client_id,
            "TOSPLUS_DATA_DIR": str(workdir / "hub"),
            "TOSPLUS_INGEST_WORKERS": str(workers),
        }
        hub_url = f"mqtt://127.0.0.1:{port}"
        with hub_process(broker_url=hub_url, database_url=database_url, extra_env=env) as hub, hub.client() as api:
            created = api.post("/api/v1/devices/bulk", json={"product_id": "smart-plug", "count": devices}).json()
        with Progress(TextColumn("publishing while the hub is down"), TimeElapsedColumn(), console=console) as p:
            p.add_task("publish", total=None)
            publish(port, [f"{d['id']}:{d['secret']}" for d in created["devices"]], messages, qos, processes)
        with hub_process(broker_url=hub_url, database_url=database_url, extra_env=env) as hub, hub.client() as api:
            first = api.get("/api/v1/hub").json()["ingest"]["accepted"]
            start = time.perf_counter()
            accepted = first
            accepted = wait_persisted(api, total, first, "persisted")
            elapsed = time.perf_counter() - start
            check_queryable(api, created["devices"], messages)
            rss = hub.rss_mb()
    rate = (accepted - first) / elapsed
    console.print(
        f"hub drained and persisted {accepted:,} messages ({2 * accepted:,} values): "
        f"[bold green]{rate:,.0f} msg/s[/bold green] = {rate / raw:.0%} of the broker's raw drain rate; "
        f"hub RSS {rss:.0f} MB"
    )
    if accepted < total:
        console.print(f"[red]LOSS: {total - accepted} messages not persisted[/red]")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
