"""The table of idempotency keys: one row per (scope, key), the first answer of a money-moving request.

On the hub's shared metadata, so the payments migration covers it with the other payments tables.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Integer, LargeBinary, String, Table

from tosplus.storage.tables import metadata

SCOPE_MAX = 400
KEY_MAX = 255

# The primary key (scope, key) is the unique constraint that decides, inside the database, which of several
# concurrent requests with one key acts: it holds across all hub processes sharing the database.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(SCOPE_MAX), primary_key=True),  # the caller and the route
    Column("key", String(KEY_MAX), primary_key=True),  # the client's Idempotency-Key
    Column("fingerprint", String(64), nullable=False),  # SHA-256 (hex) of method, path and canonical body
    Column("state", String(16), nullable=False),  # in_progress | done
    Column("lock_id", String(32), nullable=True),  # the claim acting now (in_progress); NULL once done
    Column("locked_at", BigInteger, nullable=True),  # when that claim was taken
    Column("status", Integer, nullable=True),  # the first answer (done)
    Column("media_type", String(200), nullable=True),
    Column("headers", JSON, nullable=True),  # extra response headers worth replaying (e.g. Location)
    Column("body", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),  # pruned after this moment
)
