"""Provisioning through the hub API (mocked with httpx.MockTransport), the city plan and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from tosplus.sim import datasets
from tosplus.sim.cli import app, resolve_token
from tosplus.sim.fleet import run_fleet
from tosplus.sim.home import city_plan
from tosplus.sim.provision import BULK_LIMIT, CredentialStore, DeviceCredentials, HubApi, ProvisioningError


def api_with(handler: Any) -> HubApi:
    return HubApi("http://hub.test:8080/", "tok", client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_bulk_creation_sends_what_the_hub_expects() -> None:
    bodies: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/devices/bulk" and request.method == "POST"
        assert request.headers["authorization"] == "Bearer tok"
        body = json.loads(request.content)
        bodies.append(body)
        start = sum(b["count"] for b in bodies[:-1])
        devices = [
            {"id": f"d{start + i}", "secret": "s", "name": f"{body['name_prefix']}-{i + 1}"}
            for i in range(body["count"])
        ]
        return httpx.Response(201, json={"devices": devices})

    api = api_with(handle)
    created = await api.create_devices_bulk("light", 3, "fleet-light")
    assert bodies == [{"product_id": "light", "count": 3, "name_prefix": "fleet-light"}]
    assert [c.id for c in created] == ["d0", "d1", "d2"] and created[0].product_id == "light"
    assert created[2].name == "fleet-light-3"
    bodies.clear()
    many = await api.create_devices_bulk("light", BULK_LIMIT + 2, "big")
    assert [b["count"] for b in bodies] == [BULK_LIMIT, 2] and len(many) == BULK_LIMIT + 2
    assert len({c.id for c in many}) == len(many)


async def test_errors_and_the_mqtt_endpoint() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Unauthorized", "detail": "bad token"})

    with pytest.raises(ProvisioningError, match="401 bad token"):
        await api_with(refuse).create_device("light", "x")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ProvisioningError, match="cannot be reached"):
        await api_with(down).product_ids()

    hosts = iter(["0.0.0.0", "mqtt.example"])

    def status(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"mqtt": {"host": next(hosts), "port": 1884}})

    api = api_with(status)
    assert await api.mqtt_endpoint() == ("hub.test", 1884)
    assert await api.mqtt_endpoint() == ("mqtt.example", 1884)


async def test_run_fleet_bulk_creates_then_runs() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/v1/hub":
            return httpx.Response(200, json={"mqtt": {"host": "127.0.0.1", "port": 1}})
        body = json.loads(request.content)
        return httpx.Response(
            201, json={"devices": [{"id": f"f{i}", "secret": "s", "name": f"n{i}"} for i in range(body["count"])]}
        )

    stop = asyncio.Event()
    stop.set()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        stats = await run_fleet(
            "http://hub.test", "tok", "thermostat", 4, period_s=1, stop=stop, progress=False, http=http
        )
    assert seen == ["GET /api/v1/hub", "POST /api/v1/devices/bulk"]
    assert stats.devices == 4 and [s.product_id for s in stats.simulators] == ["thermostat"] * 4
    with pytest.raises(ValueError):
        await run_fleet("http://hub.test", "tok", "toaster", 4, period_s=1, stop=stop)


def test_credential_store_ignores_another_hub(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = CredentialStore(path, "http://a:8080/")
    store.put("tv", DeviceCredentials("id1", "sec", "smart-tv", "TV", {"room": "x"}))
    assert CredentialStore(path, "http://a:8080").get("tv", "smart-tv") == store.devices["tv"]
    assert CredentialStore(path, "http://a:8080").get("tv", "light") is None
    assert CredentialStore(path, "http://b:8080").get("tv", "smart-tv") is None
    path.write_text("not json")
    assert CredentialStore(path, "http://a:8080").devices == {}


def test_city_plan_puts_parking_sensors_on_real_bays(tmp_path: Path) -> None:
    synthetic = city_plan(3, 2, datasets_dir=tmp_path)
    assert [p.product_id for p in synthetic] == ["parking-sensor"] * 3 + ["street-light"] * 2 + [
        "traffic-counter",
        "air-quality-station",
    ]
    assert all("lat" in p.labels and "lon" in p.labels for p in synthetic[:5])
    path = datasets.dataset_file(datasets.MELBOURNE_BAYS)
    if path is None:
        pytest.skip("the Melbourne data set is not on this machine")
    bays = datasets.load_melbourne_bays(path)
    plan = city_plan(3, 1)
    assert plan[0].labels["bay_id"] == bays[0].bay_id
    assert float(plan[0].labels["lat"]) == pytest.approx(bays[0].lat, abs=1e-6)
    assert plan[0].initial == {"occupied": bays[0].occupied}
    assert len({p.key for p in plan}) == len(plan)


def test_token_comes_from_option_env_or_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOSPLUS_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("TOSPLUS_DATA_DIR", str(tmp_path))
    with pytest.raises(typer.BadParameter):
        resolve_token(None)
    (tmp_path / "admin-token").write_text("from-file\n")
    assert resolve_token(None) == "from-file"
    monkeypatch.setenv("TOSPLUS_ADMIN_TOKEN", "from-env")
    assert resolve_token(None) == "from-env"
    assert resolve_token("given") == "given"


def test_cli_commands_and_options() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "home" in result.output and "fleet" in result.output
    result = runner.invoke(app, ["home", "--help"])
    assert result.exit_code == 0 and "--no-city" in result.output and "--api" in result.output
    result = runner.invoke(app, ["fleet", "--help"])
    assert result.exit_code == 0 and "--devices" in result.output and "--period" in result.output
    result = runner.invoke(app, ["fleet", "--product", "toaster", "--token", "t"])
    assert result.exit_code == 2
