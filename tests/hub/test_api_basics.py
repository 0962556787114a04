"""Products, devices, credentials and the API's manners (auth, problems, limits)."""

from __future__ import annotations

import httpx

from tests.support.hubs import HubUnderTest

LAMP_MODEL = {
    "id": "tos:acme-lamp",
    "title": "ACME lamp",
    "tos:inactivityTimeoutS": 30,
    "properties": {"on": {"type": "boolean"}, "level": {"type": "integer", "minimum": 0, "maximum": 10}},
    "actions": {"blink": {"input": {"type": "object", "properties": {"times": {"type": "integer"}}}}},
}


async def test_every_call_needs_a_valid_token(hub: HubUnderTest) -> None:
    base = str(hub.api.base_url)
    async with httpx.AsyncClient(base_url=base) as anonymous:
        for path in ("/api/v1/products", "/api/v1/devices", "/api/v1/hub"):
            response = await anonymous.get(path)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 401
        wrong = await anonymous.get("/api/v1/devices", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_builtin_catalog_and_new_product(hub: HubUnderTest) -> None:
    products = (await hub.api.get("/api/v1/products")).json()["items"]
    ids = {p["id"] for p in products}
    assert {
        "smart-tv",
        "fridge",
        "smartwatch",
        "smartphone",
        "light",
        "thermostat",
        "smart-plug",
        "speaker",
        "parking-sensor",
        "street-light",
        "traffic-counter",
        "air-quality-station",
    } <= ids
    created = await hub.api.post(
        "/api/v1/products",
        json={"id": "acme-lamp", "name": "ACME lamp", "manufacturer": "ACME", "thing_model": LAMP_MODEL},
    )
    assert created.status_code == 201, created.text
    assert created.json()["thing_model"]["properties"]["level"]["maximum"] == 10
    again = await hub.api.post(
        "/api/v1/products",
        json={"id": "acme-lamp", "name": "ACME lamp", "manufacturer": "ACME", "thing_model": LAMP_MODEL},
    )
    assert again.status_code == 409
    bad = await hub.api.post(
        "/api/v1/products",
        json={
            "id": "bad-lamp",
            "name": "x",
            "manufacturer": "x",
            "thing_model": {**LAMP_MODEL, "properties": {"on": {"type": "bool"}}},
        },
    )
    assert bad.status_code == 422
    assert "type must be one of" in bad.json()["detail"]


async def test_device_lifecycle_and_credentials(hub: HubUnderTest) -> None:
    device = await hub.create_device("light", name="Hall light", labels={"room": "hall"})
    assert device["secret"] and device["id"]
    fetched = (await hub.api.get(f"/api/v1/devices/{device['id']}")).json()
    assert "secret" not in fetched and fetched["labels"] == {"room": "hall"} and fetched["online"] is False
    listed = (await hub.api.get("/api/v1/devices", params={"label": "room=hall"})).json()["items"]
    assert [d["id"] for d in listed] == [device["id"]]

    rotated = (await hub.api.post(f"/api/v1/devices/{device['id']}/credentials/rotate")).json()
    assert rotated["secret"] != device["secret"]
    assert hub.hub.registry.authenticate(device["id"], rotated["secret"])
    assert not hub.hub.registry.authenticate(device["id"], device["secret"])

    await hub.api.post(f"/api/v1/devices/{device['id']}/credentials/revoke")
    assert not hub.hub.registry.authenticate(device["id"], rotated["secret"])

    renewed = (await hub.api.post(f"/api/v1/devices/{device['id']}/credentials/rotate")).json()
    disabled = await hub.api.patch(f"/api/v1/devices/{device['id']}", json={"enabled": False})
    assert disabled.json()["enabled"] is False
    assert not hub.hub.registry.authenticate(device["id"], renewed["secret"])

    assert (await hub.api.delete(f"/api/v1/devices/{device['id']}")).status_code == 204
    gone = await hub.api.get(f"/api/v1/devices/{device['id']}")
    assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"


async def test_bad_requests_get_clear_problems(hub: HubUnderTest) -> None:
    unknown_product = await hub.api.post("/api/v1/devices", json={"product_id": "nope"})
    assert unknown_product.status_code == 404 and "nope" in unknown_product.json()["detail"]
    wrong_type = await hub.api.post("/api/v1/devices", json={"product_id": "light", "labels": "x"})
    assert wrong_type.status_code == 422 and "labels" in wrong_type.json()["detail"]
    not_json = await hub.api.post("/api/v1/devices", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    huge = await hub.api.post(
        "/api/v1/products", content=b"x" * (5 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    too_many = await hub.api.post("/api/v1/devices/bulk", json={"product_id": "light", "count": 10_001})
    assert too_many.status_code == 422


async def test_bulk_creation_of_ten_thousand_devices(hub: HubUnderTest) -> None:
    response = await hub.api.post(
        "/api/v1/devices/bulk", json={"product_id": "parking-sensor", "count": 10_000, "name_prefix": "bay"}
    )
    assert response.status_code == 201, response.text
    devices = response.json()["devices"]
    assert len(devices) == 10_000 and len({d["id"] for d in devices}) == 10_000
    assert devices[9999]["name"] == "bay-10000"
    assert hub.hub.registry.authenticate(devices[1234]["id"], devices[1234]["secret"])
    page = (await hub.api.get("/api/v1/devices", params={"product_id": "parking-sensor", "limit": 1000})).json()
    assert len(page["items"]) == 1000 and page["next"]


async def test_fleet_provisioning(hub: HubUnderTest) -> None:
    created = await hub.api.post(
        "/api/v1/products",
        json={
            "id": "acme-lamp",
            "name": "ACME lamp",
            "manufacturer": "ACME",
            "thing_model": LAMP_MODEL,
            "fleet_provisioning": True,
        },
    )
    key = created.json()["provisioning_key"]
    async with httpx.AsyncClient(base_url=str(hub.api.base_url)) as device_side:
        ok = await device_side.post(
            "/api/v1/provision", json={"product_id": "acme-lamp", "provisioning_key": key, "serial": "SN-0001"}
        )
        assert ok.status_code == 201, ok.text
        creds = ok.json()
        assert hub.hub.registry.authenticate(creds["id"], creds["secret"])
        assert creds["mqtt"]["port"] == hub.mqtt_port
        twice = await device_side.post(
            "/api/v1/provision", json={"product_id": "acme-lamp", "provisioning_key": key, "serial": "SN-0001"}
        )
        assert twice.status_code == 409
        wrong = await device_side.post(
            "/api/v1/provision", json={"product_id": "acme-lamp", "provisioning_key": "guess", "serial": "SN-0002"}
        )
        assert wrong.status_code == 401
    listed = (await hub.api.get("/api/v1/products/acme-lamp")).json()
    assert "provisioning_key" not in listed and listed["fleet_provisioning"] is True
