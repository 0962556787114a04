"""Tables of people and their homes: accounts, sessions, API keys, homes, rooms, members, invitations, device
bindings, binding codes and the audit log. They share the hub's metadata so one alembic history covers all.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from tosplus.storage.tables import metadata

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # stored lowercased
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # person | operator | manufacturer
    Column("manufacturer", String(200), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", BigInteger, nullable=True),
    # Sign-out everywhere: access tokens issued before this moment are refused.
    Column("tokens_valid_after", BigInteger, nullable=False, default=0),
)

# A session is one sign-in (console or OAuth2 client); its refresh token rotates on each use.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("refresh_hash", String(64), nullable=False, unique=True),
    Column("previous_hash", String(64), nullable=True, index=True),  # the token it replaced: reuse = theft
    Column("kind", String(16), nullable=False),  # console | oauth
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("user_agent", String(300), nullable=True),
    Column("ip", String(64), nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

homes = Table(
    "homes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

rooms = Table(
    "rooms",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | member | guest
    Column("expires_at", BigInteger, nullable=True),
    Column("devices", JSON, nullable=True),  # guests: the device ids they may use
    Column("joined_at", BigInteger, nullable=False),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("email", String(320), nullable=True),
    Column("devices", JSON, nullable=True),
    Column("guest_expires_at", BigInteger, nullable=True),
    Column("created_by", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("accepted_by", String(32), nullable=True),
    Column("accepted_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)

device_homes = Table(
    "device_homes",
    metadata,
    Column("device_id", String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("room_id", String(32), nullable=True),
    Column("bound_by", String(32), nullable=True),
    Column("bound_at", BigInteger, nullable=False),
)

binding_codes = Table(
    "binding_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("device_id", String(64), ForeignKey("devices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # screen | sticker
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor_id", String(32), nullable=True),
    Column("actor", String(320), nullable=False),  # what people read: an e-mail, "admin token", "device"
    Column("home_id", String(32), nullable=True),
    Column("device_id", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("detail", JSON, nullable=True),
    Column("ip", String(64), nullable=True),
    Index("ix_audit_log_home_id", "home_id", "id"),
    Index("ix_audit_log_device_id", "device_id", "id"),
)

# Keys the hub signs with (access tokens); in the database so every hub process behind one database agrees.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("secret", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
