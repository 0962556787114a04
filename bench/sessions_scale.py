"""How many game pads one hub carries: controller sessions at 60 Hz, more at each step, until p99 passes 20 ms.

The hub runs in its own process (``tosplus serve``, SQLite); the load generator in ``--workers`` other
processes, each with its share of the TVs and of the phones, on lean WebSocket clients (``sessions_wire``).
With ``--pin`` the hub is pinned to core 0 and the workers to core 1, so neither steals the
other's core. Set-up: a person with a home of TVs (``--per-tv`` players each, at most 32); each TV pairs its
phones for real (SPAKE2 through the hub, with ``ScreenLink``), then hands its connection over to a lean client.

At each step, the first N sessions send 60 input frames a second each, spread evenly over time; the TVs take
the arrival time of every frame against its ``t_sent`` (same machine, same clock) after one second of warm-up.
The lean TVs ask for their input frames in batches (``inputs``), as ``ScreenLink`` does; ``--no-batch`` makes
them take one message a frame, as the browser TV page does.

    python bench/sessions_scale.py --steps 100,200,300,500,700 --seconds 10 --workers 1
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import sys
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import hub_process, machine
from bench.loadgen import percentile
from bench.sessions_latency import cpu_seconds
from bench.sessions_wire import WireClient, cpu_pressure_us, now_ms, screen_headers, set_up_home, wire_connect
from tosplus.sim.controller import SimController
from tosplus.sim.screen import SimScreen

console = Console()
LIMIT_MS = 20.0
WARM_UP_S = 1.0


# -- a worker process: its TVs and their phones ---------------------------------------------------------------


@dataclass
class Worker:
    api: str
    token: str
    tvs: list[dict[str, str]]
    per_tv: int
    batch: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    screens: list[WireClient] = field(default_factory=list)
    phones: list[WireClient] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    recording: bool = False
    received: int = 0
    messages: int = 0  # input messages on the TVs (a batch counts once)
    errors: int = 0

    def on_screen(self, payload: bytes) -> None:
        doc = orjson.loads(payload)
        kind = doc.get("type")
        if kind == "inputs":  # the TV asked for batches: the frames waiting at the hub, in one message
            frames = doc["frames"]
        elif kind == "input":
            frames = [doc]
        else:
            return
        self.received += len(frames)
        self.messages += 1
        if self.recording:
            now = now_ms()
            self.latencies.extend(now - frame["t_sent"] for frame in frames)

    def on_phone(self, payload: bytes) -> None:
        if b'"error"' in payload:
            self.errors += 1

    async def set_up(self, report: Connection) -> None:
        hostport = self.api.split("://", 1)[1]
        self.host, self.port = hostport.split(":")[0], int(hostport.split(":")[1])
        for tv in self.tvs:
            await self._pair_all(tv, report)

    async def _pair_all(self, tv: dict[str, str], report: Connection) -> None:
        async with SimScreen(tv["id"], tv["secret"], self.api, max_players=self.per_tv) as screen:
            await screen.show_pairing()
            used: set[str] = set()
            for n in range(self.per_tv):
                for _ in range(2000):
                    shown = screen.shown
                    if shown is not None and shown.code not in used and screen.link.window_id is not None:
                        break
                    await asyncio.sleep(0.005)
                used.add(shown.code)  # type: ignore[union-attr]
                controller = SimController(self.api, self.token, name=f"pad {n + 1}")
                paired = await controller.pair(tv["id"], code=shown.code)  # type: ignore[union-attr]
                phone = await wire_connect(self.host, self.port, paired.ws_path, self.on_phone)
                phone.send_json({"type": "hello", "token": self.token, "resume_token": paired.resume_token})
                self.phones.append(phone)
                report.send(("paired", 1))
            discriminator = screen.link.discriminator
        # The TV's connection is handed over to a lean client (its players wait within the grace period).
        client = await wire_connect(
            self.host, self.port, "/api/v1/sessions/screen", self.on_screen, screen_headers(tv["id"], tv["secret"])
        )
        hello = {"type": "hello", "discriminator": discriminator, "max_players": self.per_tv, "batch": self.batch}
        client.send_json(hello)
        self.screens.append(client)

    async def keepalive(self) -> None:
        while True:
            await asyncio.sleep(4.0)
            ping = orjson.dumps({"type": "ping", "t": now_ms()})
            for client in (*self.screens, *self.phones):
                client.send(ping)

    async def step(self, active: int, rate: float, seconds: float) -> dict[str, Any]:
        phones = self.phones[:active]
        self.latencies = array("d")
        self.received, self.messages, self.errors = 0, 0, 0
        cpu, start = time.process_time(), time.perf_counter()
        total = int(seconds * rate * active)
        spacing = 1.0 / (rate * active) if active else 1.0
        seqs = [0] * active
        sent = 0
        measured_from = 0
        while sent < total:
            elapsed = time.perf_counter() - start
            if not self.recording and elapsed >= WARM_UP_S:
                self.recording, measured_from = True, self.received
            due = min(total, int(elapsed / spacing))
            while sent < due:
                i = sent % active
                seqs[i] += 1
                seq = seqs[i]
                phones[i].send(
                    b'{"type":"input","seq":%d,"t_sent":%.3f,"buttons":%d,"axes":[0.5,-0.25]}'
                    % (seq + self._base, now_ms(), seq & 0xFFFF)
                )
                sent += 1
            await asyncio.sleep(0.0005)
        await asyncio.sleep(0.5)
        self.recording = False
        wall = time.perf_counter() - start
        self._base += int(seconds * rate) + 10  # seq keeps rising from step to step
        closed = [c.close_code for c in (*self.screens, *self.phones) if c.closed]
        return {
            "sent": sent,
            "received": self.received,
            "messages": self.messages,
            "measured": self.received - measured_from,
            "latencies": self.latencies.tobytes(),
            "cpu": time.process_time() - cpu,
            "wall": wall,
            "errors": self.errors,
            "closed": closed,
        }

    _base: int = 0


def worker_main(
    conn: Connection, api: str, token: str, tvs: list[dict[str, str]], per_tv: int, core: int, batch: bool
) -> None:
    if core >= 0:
        os.sched_setaffinity(0, {core})

    async def main() -> None:
        worker = Worker(api, token, tvs, per_tv, batch)
        pinger = asyncio.get_running_loop().create_task(worker.keepalive())  # from the first phone on
        await worker.set_up(conn)
        conn.send(("ready", len(worker.phones)))
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "stop":
                break
            conn.send(("result", await worker.step(*command[1:])))
        pinger.cancel()

    asyncio.run(main())


# -- the coordinator ------------------------------------------------------------------------------------------


def pin_process(pid: int, cores: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cores)


def run(
    steps: list[int], seconds: float, rate: float, workers: int, per_tv: int, pin: bool, stop_ms: float, batch: bool
) -> None:
    most = max(steps)
    tv_count = math.ceil(most / per_tv)
    env = {"TOSPLUS_SESSION_MAX_PLAYERS": str(per_tv)}
    with hub_process(extra_env=env) as hub:
        if pin:
            pin_process(hub.process.pid, {0})
        home = set_up_home(hub, tv_count)
        shares = [home.tvs[i::workers] for i in range(workers)]
        pipes: list[Connection] = []
        processes: list[mp.Process] = []
        ctx = mp.get_context("fork")
        for share in shares:
            mine, theirs = ctx.Pipe()
            process = ctx.Process(
                target=worker_main,
                args=(theirs, hub.api, home.token, share, per_tv, 1 if pin else -1, batch),
                daemon=True,
            )
            process.start()
            pipes.append(mine)
            processes.append(process)
        per_worker = [len(share) * per_tv for share in shares]
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("pairing phones with TVs (SPAKE2 through the hub)", total=sum(per_worker))
            ready = 0
            while ready < workers:
                for pipe in pipes:
                    while pipe.poll():
                        kind, value = pipe.recv()
                        if kind == "paired":
                            progress.advance(task, value)
                        elif kind == "ready":
                            ready += 1
                time.sleep(0.05)
        time.sleep(2.0)  # the TVs' lean connections are attached
        rows = []
        for sessions in steps:
            # Spread the active sessions over the workers as their TVs are spread.
            active = [
                min(per_worker[i], sessions // workers + (1 if i < sessions % workers else 0)) for i in range(workers)
            ]
            hub_cpu, wall, waited = cpu_seconds(hub.process.pid), time.perf_counter(), cpu_pressure_us()
            with Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True
            ) as progress:
                task = progress.add_task(f"{sessions} sessions x {rate:g} Hz", total=seconds)
                for pipe, n in zip(pipes, active, strict=True):
                    pipe.send(("step", n, rate, seconds))
                results = []
                while len(results) < workers:
                    for pipe in pipes:
                        if pipe.poll(0.05):
                            results.append(pipe.recv()[1])
                    progress.update(task, completed=min(seconds, time.perf_counter() - wall))
            wall = time.perf_counter() - wall
            hub_cpu = cpu_seconds(hub.process.pid) - hub_cpu
            waited = (cpu_pressure_us() - waited) / 1e6 / wall if waited >= 0 else math.nan
            latencies = [x for r in results for x in array("d", r["latencies"])]
            measured = sum(r["measured"] for r in results)
            row = {
                "sessions": sum(active),
                "sent": sum(r["sent"] for r in results),
                "received": sum(r["received"] for r in results),
                "carried": measured / (seconds - WARM_UP_S),
                "p50": percentile(latencies, 0.5) if latencies else math.nan,
                "p99": percentile(latencies, 0.99) if latencies else math.nan,
                "max": max(latencies) if latencies else math.nan,
                "hub_cpu": hub_cpu / wall,
                "batch": sum(r["received"] for r in results) / max(1, sum(r["messages"] for r in results)),
                "hub_us": hub_cpu / max(1, sum(r["received"] for r in results)) * 1e6,
                "gen_cpu": sum(r["cpu"] for r in results) / wall,
                "pressure": waited,
                "errors": sum(r["errors"] for r in results),
                "closed": sum(len(r["closed"]) for r in results),
                "close_codes": sorted({c for r in results for c in r["closed"]}),
            }
            rows.append(row)
            console.print(
                f"{row['sessions']} sessions: {row['carried']:.0f} frames/s carried, p50 {row['p50']:.2f} ms,"
                f" p99 {row['p99']:.2f} ms, {row['batch']:.1f} frames a TV message,"
                f" hub {row['hub_cpu']:.0%} ({row['hub_us']:.0f} µs a frame),"
                f" load generator {row['gen_cpu']:.0%}, CPU pressure {row['pressure']:.0%}"
            )
            if row["p99"] > stop_ms:
                break
        for pipe in pipes:
            pipe.send(("stop",))
        for process in processes:
            process.join(10)
    table = Table(
        title=f"controller sessions at {rate:g} Hz, {seconds:g} s a step (first {WARM_UP_S:g} s not measured)"
    )
    for column in ["sessions", "frames sent", "on the TVs", "carried/s", "p50 ms", "p99 ms", "max ms", "frames/TV msg"]:
        table.add_column(column, justify="right")
    for column in ["hub CPU"]:
        table.add_column(column, justify="right")
    for column in ["hub µs/frame", "CPU pressure"]:
        table.add_column(column, justify="right")
    table.add_column("load gen CPU", justify="right")
    table.add_column("errors / closed", justify="right")
    for row in rows:
        table.add_row(
            str(row["sessions"]),
            str(row["sent"]),
            str(row["received"]),
            f"{row['carried']:.0f}",
            f"{row['p50']:.2f}",
            f"{row['p99']:.2f}",
            f"{row['max']:.1f}",
            f"{row['batch']:.1f}",
            f"{row['hub_cpu']:.0%}",
            f"{row['hub_us']:.0f}",
            f"{row['pressure']:.0%}",
            f"{row['gen_cpu']:.0%}",
            f"{row['errors']} / {row['closed']} {row['close_codes'] or ''}",
        )
    console.print(table)
    cores = "hub on core 0, load generator on core 1" if pin else "not pinned"
    console.print(f"{workers} load generator process(es), {cores}; {tv_count} TVs x {per_tv} players")
    console.print("TVs take input frames " + ("in batches (`inputs`)" if batch else "one message each (`input`)"))
    console.print("CPU pressure: share of the step in which some task of the machine waited for a core (PSI)")
    console.print(f"machine: {machine()}")
    console.print("command: python " + " ".join(sys.argv))


def main(
    steps: str = typer.Option("100,200,300,500,700", help="concurrent sessions at each step"),
    seconds: float = typer.Option(10.0, help="length of a step"),
    rate: float = typer.Option(60.0, help="input frames a second per session"),
    workers: int = typer.Option(1, min=1, help="load generator processes"),
    per_tv: int = typer.Option(32, min=1, max=32, help="players per TV"),
    pin: bool = typer.Option(False, help="hub on core 0, load generator on core 1 (else both share the 2 cores)"),
    stop_ms: float = typer.Option(LIMIT_MS, help="stop after the step whose p99 passes this"),
    batch: bool = typer.Option(True, help="the TVs ask for input frames in batches (else one message a frame)"),
) -> None:
    run([int(s) for s in steps.split(",")], seconds, rate, workers, per_tv, pin, stop_ms, batch)


if __name__ == "__main__":
    typer.run(main)
