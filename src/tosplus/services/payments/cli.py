"""``tosplus payments ...``: operators' commands for the payment system."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False)
console = Console()


@app.command()
def verify() -> None:
    """Check the ledger in the database: debits equal credits, and every balance equals its transfers' sum."""
    from tosplus.config import Settings
    from tosplus.services.payments.ledger_verify import verify as run_verify
    from tosplus.storage.engine import open_database

    async def check() -> bool:
        engine = await open_database(Settings().effective_database_url)
        try:
            with console.status("Summing every account's transfers…"):
                report = await run_verify(engine)
        finally:
            await engine.dispose()
        table = Table(title="Ledger", show_header=False)
        table.add_row("accounts", f"{report.accounts:,}")
        table.add_row("transfers", f"{report.transfers:,}")
        table.add_row("debits posted / credits posted", f"{report.debits_posted:,} / {report.credits_posted:,}")
        table.add_row("debits pending / credits pending", f"{report.debits_pending:,} / {report.credits_pending:,}")
        console.print(table)
        for problem in report.problems:
            console.print(f"[red]✗ {problem}[/red]")
        if report.ok:
            console.print("[green]✓ balanced: no money created or lost; every balance equals its transfers[/green]")
        return report.ok

    if not asyncio.run(check()):
        raise typer.Exit(1)
