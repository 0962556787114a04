"""The webhook tables: merchants' endpoints, and the outbox of events to deliver to them.

On the hub's shared metadata, so the payments migration covers them with the other payments tables. Times are
milliseconds since the epoch, like everywhere else.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from tosplus.storage.tables import metadata

URL_MAX = 2048
EVENT_ID_MAX = 64
EVENT_TYPE_MAX = 100
ERROR_MAX = 500

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),  # we_...
    Column("owner", String(64), nullable=False, index=True),  # the merchant's id
    Column("url", String(URL_MAX), nullable=False),
    # Kept in clear: signing needs the secret itself, not a hash. Shown to the merchant once, at creation.
    Column("secret", String(100), nullable=False),
    # After a rotation with an overlap, the old secret also signs (a second v1=) until previous_until.
    Column("previous_secret", String(100), nullable=True),
    Column("previous_until", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The outbox: one row per (endpoint, event), inserted in the transaction of the change that caused the event, so
# an event exists exactly when its change was committed. The primary key makes a repeated enqueue a no-op.
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), primary_key=True),
    Column("event_id", String(EVENT_ID_MAX), primary_key=True),  # evt_...: the merchant's dedup key
    Column("type", String(EVENT_TYPE_MAX), nullable=False),
    Column("body", Text, nullable=False),  # the JSON text, sent (and signed) byte for byte on every attempt
    Column("state", String(16), nullable=False),  # pending | delivered | failed | canceled
    Column("attempts", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("next_attempt_at", BigInteger, nullable=False),
    # A dispatcher's claim: while lease_until is in the future, no other dispatcher takes the row or sends to
    # its endpoint. lease_id names the claim, so a dispatcher whose lease was taken over records nothing.
    Column("lease_until", BigInteger, nullable=True),
    Column("lease_id", String(32), nullable=True),
    Column("last_attempt_at", BigInteger, nullable=True),
    Column("last_status", Integer, nullable=True),  # the HTTP status of the last attempt; NULL: no answer
    Column("last_error", String(ERROR_MAX), nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    # Due rows, oldest first: the dispatcher's poll reads this index and nothing else of the backlog.
    Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
    # Rows in flight (leases are cleared when an attempt is recorded): which endpoints are busy right now.
    Index("ix_webhook_outbox_lease_until", "lease_until"),
)
