"""Scenes and the record of every run, with each device's result."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, String, Table

from tosplus.services.homes import tables as _homes  # noqa: F401  (scenes belong to homes)
from tosplus.storage.tables import metadata

scenes = Table(
    "scenes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("home_id", String(32), ForeignKey("homes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("trigger", JSON, nullable=True),
    Column("created_by", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

scene_runs = Table(
    "scene_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("scene_id", String(32), ForeignKey("scenes.id", ondelete="CASCADE"), nullable=False),
    Column("home_id", String(32), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("actor_id", String(32), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("results", JSON, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False),
    Index("ix_scene_runs_scene_started", "scene_id", "started_at"),
)
