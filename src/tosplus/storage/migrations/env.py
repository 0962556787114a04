"""Alembic environment: the hub passes its open connection in ``config.attributes['connection']``."""

from __future__ import annotations

from alembic import context

from tosplus.services.homes import tables as _homes_tables  # noqa: F401  (registers their tables)
from tosplus.services.payments import tables_idempotency as _idempotency_tables  # noqa: F401
from tosplus.services.payments import tables_intents as _intents_tables  # noqa: F401
from tosplus.services.payments import tables_ledger as _ledger_tables  # noqa: F401
from tosplus.services.payments import tables_payments as _payments_tables  # noqa: F401
from tosplus.services.payments import tables_refunds as _refunds_tables  # noqa: F401
from tosplus.services.payments import tables_webhooks as _webhooks_tables  # noqa: F401
from tosplus.services.payments import tables_withdrawals as _withdrawals_tables  # noqa: F401
from tosplus.services.scenes import tables as _scenes_tables  # noqa: F401
from tosplus.services.sessions import tables as _sessions_tables  # noqa: F401
from tosplus.services.voice import tables as _voice_tables  # noqa: F401
from tosplus.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through tosplus (tosplus.storage.engine.open_database)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
