"""Hub settings, validated at start (pydantic-settings, environment prefix ``TOSPLUS_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything ``tosplus serve`` can be told. Flags override environment variables."""

    model_config = SettingsConfigDict(env_prefix="TOSPLUS_", extra="ignore")

    data_dir: Path = Field(default=Path(".tosplus"), description="Where the hub keeps its files.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=0, le=65535, description="Port of the embedded broker.")
    coap_port: int = Field(default=5683, ge=0, le=65535, description="CoAP (UDP) port; 0 disables CoAP.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    broker_url: str = Field(
        default="",
        description="External broker, e.g. mqtt://admin:secret@127.0.0.1:1883; empty means the embedded one.",
    )
    broker_accounts: Literal["dynsec", "none"] = Field(
        default="dynsec",
        description="How device accounts reach an external broker: its dynamic-security plugin, or not at all "
        "(the broker's authentication is managed elsewhere).",
    )
    ingest_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Extra ingest processes sharing the telemetry stream (needs an external MQTT 5 broker).",
    )
    shared_group: str = Field(default="", description="MQTT 5 shared-subscription group for several hub workers.")
    admin_token: str = Field(default="", description="Administrator bearer token; generated if empty.")
    payments_per_device_per_minute: int = Field(default=6, ge=1, description="Counter payments a minute per device.")
    payments_per_wallet_per_minute: int = Field(default=30, ge=1, description="Counter payments a minute per wallet.")
    webhooks_allow_insecure: bool = Field(
        default=False, description="Let merchants register http:// and local webhook URLs (development only)."
    )
    wyoming_uri: str | None = Field(
        default=None, description="Serve speech and intents over the Wyoming protocol here, e.g. tcp://0.0.0.0:10300."
    )
    wyoming_api_key: str | None = Field(
        default=None, description="A person's API key (tpk_...): Wyoming clients act as this person, in their home."
    )
    wyoming_home: str | None = Field(default=None, description="The home Wyoming acts in (the person's first home).")
    wyoming_engines: str | None = Field(
        default=None,
        description="Speech-to-text engines elsewhere over Wyoming: gpu=tcp://10.0.0.5:10300 (engine wyoming-gpu).",
    )
    session_max_players: int = Field(default=8, ge=1, le=32, description="Players per game on a screen by default.")
    max_payload_bytes: int = Field(default=64 * 1024, ge=256)
    device_rate_per_s: float = Field(default=100.0, gt=0, description="Sustained messages/s per device.")
    device_rate_burst: int = Field(default=200, ge=1, description="Burst allowance per device.")
    rate_limit_grace_s: float = Field(
        default=5.0,
        ge=0,
        description="After the hub's broker session starts, the backlog the broker kept is not rate limited "
        "for at least this long (and until it has drained).",
    )
    command_timeout_s: float = Field(default=10.0, gt=0)
    dead_letters_per_device: int = Field(default=1000, ge=10, description="Dead letters kept per device.")
    ingest_batch: int = Field(default=2000, ge=1)
    ingest_flush_ms: int = Field(default=20, ge=1)
    hub_client_id: str = Field(default="tosplus-hub", description="MQTT client id of the hub's session.")

    @field_validator("broker_url")
    @classmethod
    def _broker_url_shape(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise ValueError("broker_url must look like mqtt://user:password@host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_shape(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _shared_needs_external_broker(self) -> Settings:
        if (self.shared_group or self.ingest_workers) and not self.broker_url:
            raise ValueError(
                "shared_group and ingest_workers need an external MQTT 5 broker (broker_url); the "
                "embedded broker has no shared subscriptions"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tosplus.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url


def normalise_database_url(url: str) -> str:
    """Pick the async driver for a plain URL: people write postgresql://, SQLAlchemy needs +asyncpg."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
