"""Opening the database: SQLite (default, one file) or PostgreSQL, chosen by one URL; schema by alembic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tosplus.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while ingest writes; NORMAL sync is durable across process crashes in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An engine with our connection settings (SQLite: WAL and friends; PostgreSQL: a pool)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # One connection, used in turn: SQLite takes one writer at a time, and writers on several connections
        # of one process collide and back off in SQLite's busy handler (sleeps of up to 100 ms). Each of our
        # statements is short, so waiting for the connection costs far less.
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def open_database(url: str) -> AsyncEngine:
    """Connect, check the server answers, and bring the schema to the newest migration.

    Raises :class:`ConfigError` with one sentence when the database cannot be used.
    """
    parsed = make_url(url)
    engine = create_engine(url)
    try:
        async with asyncio.timeout(10):
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade)
    except (OSError, TimeoutError) as exc:
        await engine.dispose()
        where = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"cannot reach the database at {where}: {exc}") from None
    except Exception as exc:
        await engine.dispose()
        where = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"cannot open the database at {where}: {type(exc).__name__}: {exc}") from None
    return engine


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
