"""The ``tosplus`` command: serve the hub, simulate devices, administer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.panel import Panel

from tosplus import __version__
from tosplus.errors import ConfigError
from tosplus.services.payments import cli as payments_cli
from tosplus.services.voice import cli as voice_cli

app = typer.Typer(
    help="TOS+: an open operating platform for connected things.", no_args_is_help=True, add_completion=False
)
console = Console(stderr=True)


def _simulate_app() -> typer.Typer | None:
    try:
        from tosplus.sim import cli
    except ImportError:
        return None
    simulate: typer.Typer = cli.app
    return simulate


_sim = _simulate_app()
if _sim is not None:
    app.add_typer(_sim, name="simulate", help="Simulated devices: a home, a city, or a fleet of N.")
app.add_typer(payments_cli.app, name="payments", help="The payment system: check the ledger.")
app.add_typer(voice_cli.app, name="voice", help="Speech recognition: measure it on recorded or synthesised speech.")


def _settings(**flags: Any) -> Any:
    from tosplus.config import Settings

    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        console.print(f"[red]Bad setting {name}: {first['msg']}[/red]")
        raise typer.Exit(2) from None


@app.command()
def serve(
    data_dir: Annotated[Path | None, typer.Option(help="Where the hub keeps its files [env TOSPLUS_DATA_DIR]")] = None,
    http_host: Annotated[str | None, typer.Option(help="[env TOSPLUS_HTTP_HOST]")] = None,
    http_port: Annotated[int | None, typer.Option(help="[env TOSPLUS_HTTP_PORT]")] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="Embedded broker address [env TOSPLUS_MQTT_HOST]")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="Embedded broker port [env TOSPLUS_MQTT_PORT]")] = None,
    coap_port: Annotated[int | None, typer.Option(help="CoAP UDP port, 0 = off [env TOSPLUS_COAP_PORT]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[env TOSPLUS_DATABASE_URL]")] = None,
    broker_url: Annotated[str | None, typer.Option(help="External broker [env TOSPLUS_BROKER_URL]")] = None,
    admin_token: Annotated[str | None, typer.Option(help="[env TOSPLUS_ADMIN_TOKEN]")] = None,
    ingest_workers: Annotated[
        int | None, typer.Option(help="Extra ingest processes (external MQTT 5 broker) [env TOSPLUS_INGEST_WORKERS]")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Also run a simulated home (and a small city).")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Run the hub: broker, API, ingest. Stops cleanly on Ctrl-C."""
    settings = _settings(
        data_dir=data_dir,
        http_host=http_host,
        http_port=http_port,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        coap_port=coap_port,
        database_url=database_url,
        broker_url=broker_url,
        admin_token=admin_token,
        ingest_workers=ingest_workers,
    )
    logging.basicConfig(
        level=log_level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    for noisy in ("amqtt", "transitions", "aiocoap", "uvicorn.error", "alembic", "httpx", "httpcore", "tosplus.sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        _run(_serve(settings, demo))
    except ConfigError as exc:
        console.print(f"[red]The hub cannot start: {exc.detail}[/red]")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


def _run(main: Any) -> None:
    """uvloop where it is installed (a quarter less CPU per request and message), else asyncio's own loop.

    ``TOSPLUS_UVLOOP=0`` forces the standard loop.
    """
    if os.environ.get("TOSPLUS_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


async def _serve(settings: Any, demo: bool) -> None:
    from tosplus.app import create_hub

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows event loops
            loop.add_signal_handler(sig, stop.set)
    hub = await create_hub(settings)
    async with hub:
        api = f"http://{settings.http_host}:{hub.http_port}"
        lines = [
            f"[bold]API[/bold]      {api}/api/v1   (OpenAPI: {api}/api/v1/docs)",
            f"[bold]Live[/bold]     ws://{settings.http_host}:{hub.http_port}/api/v1/live",
            f"[bold]MQTT[/bold]     mqtt://{hub.mqtt_host}:{hub.mqtt_port}"
            + ("  (embedded broker, MQTT 3.1.1)" if settings.embedded_broker else "  (external broker)"),
            f"[bold]Device HTTP[/bold] {api}/device/v1",
        ]
        if hub.coap_port:
            lines.append(f"[bold]CoAP[/bold]     coap://{settings.mqtt_host}:{hub.coap_port}/tos/v1")
        lines.append(f"[bold]Database[/bold] {hub.engine.dialect.name}")
        if hub.admin.token:
            lines.append(f"[bold]Admin token[/bold] {hub.admin.token}  (saved to {hub.admin.file})")
        elif hub.admin.file:
            lines.append(f"[bold]Admin token[/bold] in {hub.admin.file}")
        else:
            lines.append("[bold]Admin token[/bold] the one in TOSPLUS_ADMIN_TOKEN")
        console.print(Panel("\n".join(lines), title=f"TOS+ hub {__version__}", expand=False))
        # Everything built so far lives as long as the hub: keep the cyclic collector from rescanning it.
        gc.freeze()
        tasks = []
        if demo:
            tasks.append(asyncio.create_task(_demo(settings, hub, api, stop)))
        await stop.wait()
        console.print("Stopping: finishing what was received…")
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)


async def _demo(settings: Any, hub: Any, api: str, stop: asyncio.Event) -> None:
    from tosplus.core.tokens import TOKEN_FILE
    from tosplus.services.homes.demo import demo_account, furnish
    from tosplus.services.payments.demo import SHOP_NAME, let_the_watch_pay, open_wallet_and_shop
    from tosplus.sim.home import run_city, run_home

    account = await demo_account(hub, settings.data_dir)
    user_id = hub.people.accounts.by_email(account.email).id
    shop_key = await open_wallet_and_shop(hub, user_id, settings.data_dir)
    console.print(
        Panel(
            f"[bold]Console[/bold]  {api}/console/\n"
            f"[bold]Sign in[/bold]  {account.email}  /  {account.password}   (saved in the data directory)\n"
            f"[bold]Shop[/bold]     {SHOP_NAME}: API key {shop_key}\n"
            f"         charge the watch's pay code (Wallet → Show pay code): POST {api}/api/v1/merchant/micropay",
            title="Demo home",
            expand=False,
        )
    )

    async def furnish_then_pay() -> None:
        await furnish(hub, account, stop)
        await let_the_watch_pay(hub, user_id, account.home_id)
        _print_tv_and_speaker(api, state)

    token = settings.admin_token or (settings.data_dir / TOKEN_FILE).read_text().strip()
    state = settings.data_dir / "simulated-home.json"
    city_state = settings.data_dir / "simulated-city.json"
    console.print("[green]Simulated home and city are starting (state in the data directory)…[/green]")
    try:
        await asyncio.gather(
            run_home(api, token, stop=stop, state_file=state),
            run_city(api, token, stop=stop, state_file=city_state),
            furnish_then_pay(),
        )
    except Exception:
        logging.getLogger("tosplus.sim").exception("the simulated home stopped")


def _print_tv_and_speaker(api: str, state: Path) -> None:
    """Where to play with the demo's TV (the browser page plays it; a phone's game pad pairs with its code) and
    how its speaker hears a spoken request. The TV's secret goes in the URL's fragment, which never reaches a
    server log; it is the simulated TV's, saved in the data directory."""
    from tosplus.sim.provision import CredentialStore

    store = CredentialStore(state, api)
    tv, speaker = store.get("tv", "smart-tv"), store.get("speaker", "speaker")
    if tv is None or speaker is None:
        return
    lines = (
        "[bold]TV, game pad and voice[/bold] (long lines are not wrapped: copy them whole)",
        f"  TV        open in a browser window (it shows a pairing code and runs the arena game): "
        f"{api}/console/tv.html#device={tv.id}&secret={tv.secret}",
        f"  Game pad  on a phone or in another window: {api}/console/pad.html — enter the code the TV shows",
        "  Talk      in the console: Homes → your home → Talk; or say something as the kitchen speaker:",
        f"            tosplus simulate speak 'turn on the kitchen light' --api {api} "
        f"--device-id {speaker.id} --secret {speaker.secret}",
    )
    for line in lines:
        console.print(line, soft_wrap=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
