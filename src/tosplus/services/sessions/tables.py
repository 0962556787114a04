"""What of cross-device sessions must survive a restart: who holds which pairing credential, and each home's
session settings. Live sessions, pairing windows and attempts are in memory only (services/sessions/sessions.py).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, String, Table

from tosplus.services.homes import tables as _homes  # noqa: F401  (credentials and settings belong to homes)
from tosplus.storage.tables import metadata

# A controller (a person's phone) paired with a screen keeps a secret both of them derived from the pairing's
# SPAKE2 key; the hub never holds it, only which person and screen it links and in which home it was made.
pairing_credentials = Table(
    "pairing_credentials",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("device_id", String(64), ForeignKey("devices.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
)

session_home_settings = Table(
    "session_home_settings",
    metadata,
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), primary_key=True),
    Column("guests_may_control", Boolean, nullable=False, default=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(32), nullable=True),
)
