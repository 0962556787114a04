"""Game-pad latency through the hub: phone → hub → TV at 8 players x 60 Hz, against a bare WebSocket echo.

The hub runs in its own process (``tosplus serve``); the TV (``ScreenLink`` via ``SimScreen``) and the phones
(``ControllerSession`` via ``SimController``, the SDK's own clients) run here, in one process, so the phone's
``t_sent`` and the TV's arrival time come from one clock and the one-way time is exact. In the same run:

- **floor**: a bare WebSocket echo server (the ``websockets`` library the hub's server side also uses, in its
  own process) answered by the same clients at the same rate; its round trip is two hops over loopback, as is
  phone → hub → TV;
- **code → first frame**: from the moment the phone has the code to the TV receiving its first input frame
  (SPAKE2 pairing through the hub, the session's WebSocket, the frame);
- **round trip**: the simulated TV echoes each frame to its phone (``from_screen {echo_seq, t_sent}``).

    python bench/sessions_latency.py --players 8 --rate 60 --seconds 20
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import free_port, hub_process, machine, wait_port
from bench.loadgen import percentile
from bench.sessions_wire import cpu_pressure_us, now_ms, set_up_home
from tosplus.sdk.controller import ControllerSession
from tosplus.sim.controller import PairedSession, SimController
from tosplus.sim.screen import SimScreen

console = Console()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve_echo(port: int) -> None:
    import logging

    from websockets.asyncio.server import serve

    logging.getLogger("websockets").setLevel(logging.CRITICAL)  # wait_port's bare TCP probe is not an error

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", port, compression=None, ping_interval=None):
        await asyncio.Future()


async def paced(players: int, rate: float, seconds: float, send: Any, progress: Progress, label: str) -> int:
    """Call ``send(player, seq)`` for each player ``rate`` times a second, the players spread over the period."""
    task = progress.add_task(label, total=seconds)
    period = 1.0 / rate
    start = time.perf_counter()
    frames = 0
    total = int(seconds * rate * players)
    while frames < total:
        due = int((time.perf_counter() - start) / period * players)
        while frames < min(due, total):
            await send(frames % players, frames // players + 1)
            frames += 1
        progress.update(task, completed=min(seconds, time.perf_counter() - start))
        await asyncio.sleep(period / players / 2)
    return frames


async def echo_floor(port: int, players: int, rate: float, seconds: float, progress: Progress) -> list[float]:
    from websockets.asyncio.client import connect

    rtts: list[float] = []
    clients = [
        await connect(f"ws://127.0.0.1:{port}/", compression=None, ping_interval=None, proxy=None)
        for _ in range(players)
    ]

    async def read(ws: Any) -> None:
        async for raw in ws:
            rtts.append(now_ms() - orjson.loads(raw)["t_sent"])

    readers = [asyncio.get_running_loop().create_task(read(ws)) for ws in clients]

    async def send(player: int, seq: int) -> None:
        frame = {"type": "input", "seq": seq, "t_sent": now_ms(), "buttons": seq & 0xFF, "axes": [0.25, -0.5]}
        await clients[player].send(orjson.dumps(frame).decode())

    await paced(players, rate, seconds, send, progress, "echo floor")
    await asyncio.sleep(0.2)
    for ws in clients:
        await ws.close()
    for reader in readers:
        reader.cancel()
    return rtts


def run(players: int, rate: float, seconds: float, floor_seconds: float) -> None:
    echo_port = free_port()
    echo = subprocess.Popen([sys.executable, __file__, "--serve-echo", str(echo_port)])
    try:
        wait_port(echo_port)
        with hub_process() as hub:
            home = set_up_home(hub, 1)

            async def both() -> None:
                with Progress(
                    TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
                ) as progress:
                    floor = await echo_floor(echo_port, players, rate, floor_seconds, progress)
                    await relay(
                        hub.api, hub.process.pid, home.token, home.tvs[0], players, rate, seconds, progress, floor
                    )

            asyncio.run(both())
    finally:
        echo.terminate()
        echo.wait(10)


async def relay(
    api: str,
    hub_pid: int,
    token: str,
    tv: dict[str, str],
    players: int,
    rate: float,
    seconds: float,
    progress: Progress,
    rtts_floor: list[float],
) -> None:
    one_way: list[float] = []
    round_trips: list[float] = []
    first_frame: dict[str, float] = {}
    first_seen: dict[str, asyncio.Event] = {}
    async with SimScreen(tv["id"], tv["secret"], api, max_players=max(8, players), echo=True) as screen:

        def arrived(frame: dict[str, Any]) -> None:
            if frame["session_id"] not in first_frame:
                first_frame[frame["session_id"]] = time.perf_counter()
                first_seen.setdefault(frame["session_id"], asyncio.Event()).set()
            one_way.append(now_ms() - frame["t_sent"])

        screen.link.on_input(arrived)
        await screen.show_pairing()
        # Code -> first frame accepted, one phone after the other, then every phone stays connected.
        entered: list[float] = []
        phones: list[ControllerSession] = []
        stack = contextlib.AsyncExitStack()
        used: set[str] = set()
        task = progress.add_task("pairing: code -> first frame", total=players)
        for n in range(players):
            controller = SimController(api, token, name=f"pad {n + 1}")
            started = time.perf_counter()
            code = await _code(screen, used)
            used.add(code)
            paired: PairedSession = await controller.pair(tv["id"], code=code)
            session = await stack.enter_async_context(controller.connect(paired, keepalive_s=5.0, keep_events=False))
            await session.send_input(0, [0.0, 0.0])
            await asyncio.wait_for(first_seen.setdefault(paired.session_id, asyncio.Event()).wait(), 10)
            entered.append((first_frame[paired.session_id] - started) * 1000)
            session.on_screen_message(
                lambda data: round_trips.append(now_ms() - data["t_sent"]) if "echo_seq" in data else None
            )
            phones.append(session)
            progress.advance(task)
        one_way.clear()
        hub_cpu, own_cpu, wall = cpu_seconds(hub_pid), time.process_time(), time.perf_counter()
        waited = cpu_pressure_us()

        async def send(player: int, seq: int) -> None:
            await phones[player].send_input(seq & 0xFFFF, [((seq % 200) - 100) / 100, 0.5])

        frames = await paced(players, rate, seconds, send, progress, f"relay: {players} players x {rate:g} Hz")
        await asyncio.sleep(0.3)
        wall = time.perf_counter() - wall
        hub_cpu, own_cpu = cpu_seconds(hub_pid) - hub_cpu, time.process_time() - own_cpu
        pressure = (cpu_pressure_us() - waited) / 1e6 / wall
        await stack.aclose()
    table = Table(
        title=f"{players} players x {rate:g} Hz, {seconds:g} s through the hub; floor {len(rtts_floor)} echoes"
    )
    for column in ["what", "samples", "p50 ms", "p99 ms", "max ms"]:
        table.add_column(column, justify="right")
    for name, values in [
        ("phone -> hub -> TV (one way)", one_way),
        ("bare WebSocket echo (round trip)", rtts_floor),
        ("phone -> TV -> phone (round trip)", round_trips),
        ("code entered -> first frame on TV", entered),
    ]:
        table.add_row(
            name,
            str(len(values)),
            f"{percentile(values, 0.5):.2f}",
            f"{percentile(values, 0.99):.2f}",
            f"{max(values):.2f}",
        )
    console.print(table)
    console.print(
        f"frames sent {frames}, on the TV {len(one_way)} ({len(one_way) / wall:.0f}/s); CPU: hub"
        f" {hub_cpu / wall:.0%} of a core, phones + TV {own_cpu / wall:.0%}; CPU pressure (some task of the machine"
        f" waiting for a core) {pressure:.0%} of the time"
    )
    console.print(f"machine: {machine()}")
    console.print("command: python " + " ".join(sys.argv))


async def _code(screen: SimScreen, used: set[str]) -> str:
    """The code the TV shows (a new one follows each pairing; wait for the hub to open its window)."""
    for _ in range(400):
        if screen.shown is not None and screen.shown.code not in used and screen.link.window_id is not None:
            return screen.shown.code
        await asyncio.sleep(0.005)
    raise RuntimeError("the TV shows no code")


def main(
    players: int = typer.Option(8, min=1, max=32),
    rate: float = typer.Option(60.0, help="input frames a second per player"),
    seconds: float = typer.Option(20.0, help="how long the players play"),
    floor_seconds: float = typer.Option(10.0, help="how long the echo floor runs"),
    serve_echo_port: int = typer.Option(0, "--serve-echo", hidden=True),
) -> None:
    if serve_echo_port:
        asyncio.run(serve_echo(serve_echo_port))
        return
    run(players, rate, seconds, floor_seconds)


if __name__ == "__main__":
    typer.run(main)
