"""Ingest workers: extra processes sharing the telemetry stream through an MQTT 5 shared subscription."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import websockets

from tests.support.hubs import ADMIN_TOKEN, postgres_database, running_hub


async def test_workers_share_telemetry_and_report_presence_live_and_dead_letters(tmp_path: Path) -> None:
    from tests.support.mosquitto import running_mosquitto

    with running_mosquitto(tmp_path / "mosquitto") as broker:
        async with (
            postgres_database() as url,
            running_hub(tmp_path / "hub", database_url=url, broker_url=broker.url, ingest_workers=2) as hub,
        ):
            assert len(hub.hub.workers.workers) == 2
            # Created after the workers started: they must learn of them.
            devices = [await hub.create_device("smart-plug") for _ in range(4)]
            watched = devices[0]["id"]
            ws_url = f"ws://127.0.0.1:{hub.hub.http_port}/api/v1/live?device_id={watched}&token={ADMIN_TOKEN}"
            async with websockets.connect(ws_url) as ws:
                await ws.recv()  # hello
                await asyncio.sleep(1.2)  # the workers hear that someone watches live telemetry
                for device in devices:
                    async with hub.device_client(device) as client:
                        for i in range(50):
                            await client.publish(
                                f"tos/v1/{device['id']}/telemetry",
                                orjson.dumps({"ts": 1_700_000_000_000 + i, "values": {"power_w": i}}),
                                qos=1,
                            )
                        await client.publish(f"tos/v1/{device['id']}/telemetry", b'{"power_w": "lots"}', qos=1)
                live = []
                async with asyncio.timeout(10):
                    while len([e for e in live if e["type"] == "telemetry"]) < 50:
                        live.append(orjson.loads(await ws.recv()))
            assert {e["device_id"] for e in live} == {watched}
            for device in devices:
                for _ in range(50):
                    points = (
                        await hub.api.get(
                            f"/api/v1/devices/{device['id']}/telemetry",
                            params={"key": "power_w", "from": 1_700_000_000_000, "to": 1_700_000_001_000},
                        )
                    ).json()["points"]
                    letters = (await hub.api.get(f"/api/v1/devices/{device['id']}/dead-letters")).json()
                    if len(points) == 50 and letters["total"] == 1:
                        break
                    await asyncio.sleep(0.1)
                assert sorted(p["value"] for p in points) == list(range(50))
                assert "must be a number" in letters["items"][0]["reason"]
                info = (await hub.api.get(f"/api/v1/devices/{device['id']}")).json()
                assert info["last_seen"] is not None
            # Workers report their counters twice a second.
            for _ in range(50):
                totals = (await hub.api.get("/api/v1/hub")).json()["ingest"]
                if totals["accepted"] >= 200 and totals["refused"] >= 4:
                    break
                await asyncio.sleep(0.1)
            assert totals["accepted"] >= 200 and totals["refused"] >= 4
            # Both workers took part (the broker deals messages round-robin across the group). Their counters
            # arrive twice a second, and the hub's totals can be complete before the last report: wait for it.
            for _ in range(50):
                if all(w.accepted > 0 for w in hub.hub.workers.workers):
                    break
                await asyncio.sleep(0.1)
            assert all(w.accepted > 0 for w in hub.hub.workers.workers), [w.accepted for w in hub.hub.workers.workers]


def test_workers_need_an_external_broker(tmp_path: Path) -> None:
    import pytest
    from pydantic import ValidationError

    from tosplus.config import Settings

    with pytest.raises(ValidationError, match="external MQTT 5 broker"):
        Settings(data_dir=tmp_path, ingest_workers=2)
