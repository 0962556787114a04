"""What of voice must survive a restart: each home's voice settings (which speech engine per language, the
home's language, whether answers are spoken). Read per request (services/voice/settings.py)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, ForeignKey, String, Table

from tosplus.services.homes import tables as _homes  # noqa: F401  (settings belong to homes)
from tosplus.storage.tables import metadata

voice_home_settings = Table(
    "voice_home_settings",
    metadata,
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), primary_key=True),
    Column("engines", JSON, nullable=False),  # language -> engine name, only the languages an owner chose
    Column("language", String(16), nullable=True),  # None: the hub's default (English)
    Column("speak", Boolean, nullable=True),  # None: the default (answers are spoken)
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(32), nullable=True),
)
