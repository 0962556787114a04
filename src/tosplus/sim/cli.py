"""``tosplus simulate``: a simulated home (and city), or a fleet of N devices, against a running hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from tosplus.sim.behaviours import BEHAVIOURS
from tosplus.sim.provision import ProvisioningError

T = TypeVar("T")

DEFAULT_API = "http://127.0.0.1:8080"
TOKEN_FILE = "admin-token"

app = typer.Typer(
    name="simulate",
    help="Simulated devices: a home, a city, or a fleet of N.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

ApiOption = Annotated[str, typer.Option("--api", envvar="TOSPLUS_API_URL", help="The hub's API base URL.")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TOSPLUS_ADMIN_TOKEN",
        help="Admin token (default: $TOSPLUS_ADMIN_TOKEN, else the file admin-token in the data directory, "
        "$TOSPLUS_DATA_DIR or .tosplus).",
    ),
]
LogOption = Annotated[str, typer.Option("--log-level", help="debug, info, warning")]


def data_dir() -> Path:
    """The hub's data directory: ``$TOSPLUS_DATA_DIR``, default ``.tosplus``."""
    return Path(os.environ.get("TOSPLUS_DATA_DIR") or ".tosplus")


def resolve_token(token: str | None) -> str:
    """The admin token given, else ``$TOSPLUS_ADMIN_TOKEN``, else the one the hub saved in its data dir."""
    if token:
        return token
    from_env = os.environ.get("TOSPLUS_ADMIN_TOKEN")
    if from_env:
        return from_env
    path = data_dir() / TOKEN_FILE
    try:
        saved = path.read_text(encoding="utf-8").strip()
    except OSError:
        saved = ""
    if not saved:
        raise typer.BadParameter(
            f"no admin token: pass --token, set TOSPLUS_ADMIN_TOKEN, or run where {path} "
            "exists (set TOSPLUS_DATA_DIR to the hub's data directory)",
            param_hint="--token",
        )
    return saved


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.WARNING)


def _run(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)``; Ctrl-C or SIGTERM sets ``stop`` and lets the devices say goodbye."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows loops, non-main threads
                loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    try:
        return asyncio.run(runner())
    except ProvisioningError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@app.command()
def home(
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    city: Annotated[bool, typer.Option("--city/--no-city", help="Also simulate a city block.")] = True,
    speed: Annotated[float, typer.Option(help="City replay speed (60: an hour of data a minute).")] = 60.0,
    period: Annotated[float | None, typer.Option(help="Telemetry period in s (default: per product).")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where credentials are kept (default: the data directory).")
    ] = None,
    log_level: LogOption = "info",
) -> None:
    """A home (TV, fridge, watch, phone, 3 lights, thermostat, plug, speaker), and a city unless --no-city.

    Devices are created on the first run and reused afterwards.
    Their credentials are kept in simulated-home.json and simulated-city.json in the data directory.
    Stops on Ctrl-C.
    """
    from tosplus.sim.home import run_city, run_home

    _logging(log_level)
    secret = resolve_token(token)
    where = state_dir or data_dir()

    async def main(stop: asyncio.Event) -> None:
        jobs: list[Awaitable[Any]] = [
            run_home(api, secret, stop=stop, state_file=where / "simulated-home.json", period_s=period)
        ]
        if city:
            jobs.append(
                run_city(api, secret, stop=stop, state_file=where / "simulated-city.json", period_s=period, speed=speed)
            )
        console.print(f"Simulating a home{' and a city' if city else ''} on {api} (Ctrl-C to stop)")
        await asyncio.gather(*jobs)

    _run(main)


@app.command()
def fleet(
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, help="How many devices.")] = 100,
    product: Annotated[str, typer.Option(help=f"Product id: {', '.join(sorted(BEHAVIOURS))}.")] = "light",
    period: Annotated[float, typer.Option(help="Telemetry period of each device, in s.")] = 5.0,
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    concurrency: Annotated[int, typer.Option(help="Devices connecting at the same time.")] = 200,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    log_level: LogOption = "warning",
) -> None:
    """Bulk-create N devices of a product, connect them all, and send telemetry every PERIOD seconds."""
    from tosplus.sim.fleet import run_fleet

    if product not in BEHAVIOURS:
        raise typer.BadParameter(
            f"no simulator for {product!r}; one of {', '.join(sorted(BEHAVIOURS))}", param_hint="--product"
        )
    _logging(log_level)
    secret = resolve_token(token)

    async def main(stop: asyncio.Event) -> None:
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, stop.set)
        stats = await run_fleet(
            api, secret, product, devices, period_s=period, stop=stop, progress=True, concurrency=concurrency
        )
        took = f" in {stats.connect_s:.1f} s" if stats.connect_s is not None else ""
        console.print(
            f"{stats.connected}/{stats.devices} devices connected{took}; {stats.telemetry} telemetry messages sent"
        )

    _run(main)


@app.command()
def screen(
    api: ApiOption = DEFAULT_API,
    token: TokenOption = None,
    device_id: Annotated[str | None, typer.Option(help="An existing TV's device id (default: make one).")] = None,
    secret: Annotated[str | None, typer.Option(help="That TV's device secret.", envvar="TOSPLUS_DEVICE_SECRET")] = None,
    name: Annotated[str, typer.Option(help="The name the TV announces.")] = "Simulated TV",
    players: Annotated[int, typer.Option(min=1, max=32, help="Players the game takes.")] = 8,
    echo: Annotated[bool, typer.Option(help="Echo each game-pad frame to its phone (latency).")] = True,
    announce: Annotated[bool, typer.Option(help="Announce the TV with mDNS on the local network.")] = False,
    state_dir: Annotated[Path | None, typer.Option(help="Where its credentials are kept.")] = None,
    log_level: LogOption = "info",
) -> None:
    """A simulated TV: shows its pairing code, holds players, obeys the remote, runs apps, reads game pads.

    Without --device-id a smart TV is made on the first run (its credentials are kept in simulated-screen.json
    in the data directory) and a binding code is printed: bind it into a home, then pair phones with the code
    the TV shows. Stops on Ctrl-C.
    """
    from tosplus.sim.screen import SimScreen

    _logging(log_level)
    if device_id is None:
        device_id, secret = _screen_device(
            api, resolve_token(token), (state_dir or data_dir()) / "simulated-screen.json"
        )
    elif not secret:
        raise typer.BadParameter("the device's secret is needed with --device-id", param_hint="--secret")

    async def main(stop: asyncio.Event) -> None:
        tv = SimScreen(device_id, secret or "", api, name=name, max_players=players, echo=echo, announce=announce)
        tv.link.on_code(
            lambda shown: console.print(f"[bold]pairing code {shown.text}[/bold]  ({shown.uri})") if shown else None
        )
        tv.link.on_controller(
            lambda event, doc: console.print(f"{event.split('.', 1)[1]}: player {doc.get('slot')} ({doc.get('name')})")
        )
        async with tv:
            await tv.show_pairing()
            console.print(f"{name} ({device_id}) is on {api}; Ctrl-C to stop")
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 10)
                if tv.frames:
                    console.print(f"game pads: {tv.frames} frames so far, players {sorted(tv.pads)}")

    _run(main)


def _screen_device(api: str, admin_token: str, path: Path) -> tuple[str, str]:
    """The simulated TV's device id and secret: kept from an earlier run, or a new smart TV."""
    import json

    import httpx

    if path.exists():
        kept = json.loads(path.read_text(encoding="utf-8"))
        return str(kept["id"]), str(kept["secret"])
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30) as client:
        made = client.post("/api/v1/devices", json={"product_id": "smart-tv", "name": "Simulated TV"})
        if made.status_code != 201:
            raise ProvisioningError(f"could not make a TV: {made.status_code} {made.text}")
        device = made.json()
        code = client.post(f"/api/v1/devices/{device['id']}/binding-codes", json={"valid_days": 7})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"id": device["id"], "secret": device["secret"]}))
    if code.status_code == 201:
        console.print(f"a new TV {device['id']}: bind it into a home with the code [bold]{code.json()['code']}[/bold]")
    return str(device["id"]), str(device["secret"])


def _speak_command() -> None:
    from tosplus.sim.speak import speak

    app.command("speak")(speak)


_speak_command()
