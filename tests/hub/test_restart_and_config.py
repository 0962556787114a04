"""What survives a restart, and what stops the hub at start with one clear sentence."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from tests.conftest import production_hub  # noqa: F401 (documents the deployment used below)
from tests.support.hubs import postgres_database, running_hub
from tests.support.services import free_port


async def test_devices_twins_and_telemetry_survive_a_restart(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        device = await hub.create_device("thermostat")
        await hub.api.patch(f"/api/v1/devices/{device['id']}/twin/desired", json={"target_c": 22})
        async with hub.device_client(device) as client:
            await client.publish(f"tos/v1/{device['id']}/telemetry", b'{"temperature_c": 19.5}', qos=1)
            await hub.settle()
    async with running_hub(tmp_path) as hub:
        twin = (await hub.api.get(f"/api/v1/devices/{device['id']}/twin")).json()
        assert twin["desired"]["state"] == {"target_c": 22} and twin["desired"]["version"] == 1
        latest = (await hub.api.get(f"/api/v1/devices/{device['id']}/telemetry/latest")).json()["values"]
        assert latest["temperature_c"]["value"] == 19.5
        assert hub.hub.registry.authenticate(device["id"], device["secret"])


async def test_qos1_messages_sent_while_the_hub_is_down_are_not_lost(tmp_path: Path) -> None:
    """External Mosquitto keeps the hub's persistent session; the hub stores the backlog when it is back."""
    from tests.support.mosquitto import running_mosquitto

    client_id = f"tosplus-hub-{uuid.uuid4().hex[:8]}"
    with running_mosquitto(tmp_path / "mosquitto") as broker:
        async with postgres_database() as url:
            settings = {"database_url": url, "broker_url": broker.url, "hub_client_id": client_id}
            async with running_hub(tmp_path / "hub", **settings) as hub:
                device = await hub.create_device("smart-plug")
            # The hub is down: the device keeps publishing at QoS 1, the broker acknowledges and keeps them.
            async with hub.device_client(device) as client:
                for i in range(300):
                    await client.publish(
                        f"tos/v1/{device['id']}/telemetry",
                        orjson.dumps({"ts": 1_700_000_000_000 + i, "values": {"power_w": i}}),
                        qos=1,
                    )
            async with running_hub(tmp_path / "hub", **settings) as hub:
                for _ in range(100):
                    await hub.settle()
                    points = (
                        await hub.api.get(
                            f"/api/v1/devices/{device['id']}/telemetry",
                            params={"key": "power_w", "from": 1_700_000_000_000, "to": 1_700_000_001_000},
                        )
                    ).json()["points"]
                    if len(points) == 300:
                        break
                assert [p["value"] for p in points] == list(range(300))


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tosplus", "serve", "--data-dir", str(tmp_path), "--coap-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def _one_clear_sentence(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    for text in expected:
        assert text in output, output


def test_port_already_taken_stops_the_hub(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(tmp_path, "--http-port", str(port), "--mqtt-port", str(free_port()))
        _one_clear_sentence(result, f"HTTP port {port}", "already in use")
        result = _serve(tmp_path, "--http-port", str(free_port()), "--mqtt-port", str(port))
        _one_clear_sentence(result, f"{port}", "already in use")


def test_unreachable_database_stops_the_hub(tmp_path: Path) -> None:
    result = _serve(
        tmp_path,
        "--http-port",
        str(free_port()),
        "--mqtt-port",
        str(free_port()),
        "--database-url",
        f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
    )
    _one_clear_sentence(result, "cannot reach the database")


def test_unreachable_broker_stops_the_hub(tmp_path: Path) -> None:
    result = _serve(
        tmp_path, "--http-port", str(free_port()), "--broker-url", f"mqtt://admin:pw@127.0.0.1:{free_port()}"
    )
    _one_clear_sentence(result, "broker")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--http-port", "70000"], "http_port"),
        (["--broker-url", "http://example"], "broker_url"),
        (["--database-url", "mysql://x"], "database_url"),
    ],
)
def test_bad_settings_stop_the_hub(tmp_path: Path, args: list[str], expected: str) -> None:
    _one_clear_sentence(_serve(tmp_path, *args), expected)


def test_bad_environment_setting_stops_the_hub(tmp_path: Path) -> None:
    _one_clear_sentence(_serve(tmp_path, env={"TOSPLUS_MAX_PAYLOAD_BYTES": "lots"}), "max_payload_bytes")
