"""The hub's tables (SQLAlchemy Core). Migrations in storage/migrations follow this file.

Times are integers of milliseconds since the epoch everywhere: they compare and index the same way on SQLite
and PostgreSQL, and they are what devices send.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

products = Table(
    "products",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("manufacturer", String(200), nullable=False),
    Column("thing_model", JSON, nullable=False),
    Column("provisioning_key_hash", String(64), nullable=True),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("product_id", String(64), ForeignKey("products.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("secret_hash", String(64), nullable=True),  # NULL: credentials revoked
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
    Column("credentials_at", BigInteger, nullable=False),
    Column("online", Boolean, nullable=False, default=False),
    Column("last_seen", BigInteger, nullable=True),
    Column("presence_at", BigInteger, nullable=True),
    Column("dead_letter_count", BigInteger, nullable=False, default=0),
)

twins = Table(
    "twins",
    metadata,
    Column("device_id", String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("desired", JSON, nullable=False),
    Column("desired_meta", JSON, nullable=False),  # property -> ms it was last set
    Column("desired_version", BigInteger, nullable=False),
    Column("reported", JSON, nullable=False),
    Column("reported_meta", JSON, nullable=False),
    Column("reported_version", BigInteger, nullable=False),
)

# One row per value: the narrow layout every time-series query (range, aggregate, latest) works on.
# `num` holds numbers and booleans (as 0/1, so averages of a switch give its duty cycle); `txt` holds the
# JSON text of everything that is not a plain number (strings, booleans, objects).
telemetry = Table(
    "telemetry",
    metadata,
    Column("device_id", String(64), nullable=False),
    Column("key", String(128), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("num", Float, nullable=True),
    Column("txt", Text, nullable=True),
    Index("ix_telemetry_device_key_ts", "device_id", "key", "ts"),
)

telemetry_latest = Table(
    "telemetry_latest",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("num", Float, nullable=True),
    Column("txt", Text, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("data", JSON, nullable=True),
    Index("ix_events_device_ts", "device_id", "ts"),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("params", JSON, nullable=True),
    Column("state", String(16), nullable=False),
    Column("persistent", Boolean, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("completed_at", BigInteger, nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_commands_device_created", "device_id", "created_at"),
    Index("ix_commands_state", "state"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=True),  # NULL: the topic named no known device
    Column("topic", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),  # size as received; payload is cut at 4 KiB
    Column("received_at", BigInteger, nullable=False),
    Index("ix_dead_letters_device_id", "device_id", "id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)
