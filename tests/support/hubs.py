"""Running real hubs in tests: embedded broker + SQLite, or Mosquitto + PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from tests.support.services import require

ADMIN_TOKEN = "test-admin-token-" + uuid.uuid4().hex


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import asyncpg

    host, port = require("postgresql")
    name = f"tosplus_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@{host}:{port}/{name}"
    finally:
        admin = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class HubUnderTest:
    hub: Any
    api: httpx.AsyncClient
    mqtt_host: str
    mqtt_port: int
    mqtt5: bool

    async def create_device(self, product_id: str = "light", **extra: Any) -> dict[str, Any]:
        response = await self.api.post("/api/v1/devices", json={"product_id": product_id, **extra})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def device_client(self, device: dict[str, Any], *, will: bool = True, **kwargs: Any) -> aiomqtt.Client:
        device_id = device["id"]
        return aiomqtt.Client(
            self.mqtt_host,
            self.mqtt_port,
            identifier=device_id,
            username=device_id,
            password=kwargs.pop("password", device["secret"]),
            protocol=aiomqtt.ProtocolVersion.V5 if self.mqtt5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(f"tos/v1/{device_id}/status", b"offline", qos=1, retain=True) if will else None,
            **kwargs,
        )

    async def settle(self) -> None:
        """Wait until everything the broker has handed over is stored."""
        for _ in range(200):
            await asyncio.sleep(0.02)
            if not self.hub.ingest.queue:
                await asyncio.sleep(0.05)
                if not self.hub.ingest.queue:
                    return


@contextlib.asynccontextmanager
async def running_hub(data_dir: Path, **settings: Any) -> AsyncIterator[HubUnderTest]:
    from tosplus.app import create_hub
    from tosplus.config import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "http_port": 0,
        "mqtt_port": 0,
        "coap_port": 0,
        "admin_token": ADMIN_TOKEN,
        "hub_client_id": f"tosplus-hub-{uuid.uuid4().hex[:8]}",
    }
    values.update(settings)
    hub = await create_hub(Settings(**values))
    await hub.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{hub.http_port}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        ) as api:
            yield HubUnderTest(hub, api, hub.mqtt_host, hub.mqtt_port, not hub.settings.embedded_broker)
    finally:
        await hub.stop()


async def next_message(client: aiomqtt.Client, topic_suffix: str, timeout: float = 5.0) -> aiomqtt.Message:
    async with asyncio.timeout(timeout):
        async for message in client.messages:
            if message.topic.value.endswith(topic_suffix):
                return message
    raise AssertionError("unreachable")
