"""The command a person runs first: ``tosplus serve --demo`` brings up a hub with a simulated home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.services import free_port


def test_serve_with_a_simulated_home_and_a_clean_stop(tmp_path: Path) -> None:
    http_port, mqtt_port = free_port(), free_port()
    env = {**os.environ, "TOSPLUS_DATA_DIR": str(tmp_path), "TOSPLUS_COAP_PORT": "0"}
    env.pop("TOSPLUS_ADMIN_TOKEN", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tosplus",
            "serve",
            "--demo",
            "--http-port",
            str(http_port),
            "--mqtt-port",
            str(mqtt_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        token_file = tmp_path / "admin-token"
        deadline = time.monotonic() + 60
        devices: list[dict] = []  # type: ignore[type-arg]
        online = []
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as api:
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if process.poll() is not None or not token_file.exists():
                    continue
                headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
                try:
                    devices = api.get("/api/v1/devices", params={"limit": 1000}, headers=headers).json()["items"]
                except httpx.HTTPError:
                    continue
                online = [d for d in devices if d["online"]]
                if len(online) >= 10:
                    break
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            products = {d["product_id"] for d in online}
            assert {"smart-tv", "fridge", "smartwatch", "light", "thermostat"} <= products, products
            thermostat = next(d for d in devices if d["product_id"] == "thermostat")
            for _ in range(40):
                latest = api.get(f"/api/v1/devices/{thermostat['id']}/telemetry/latest", headers=headers).json()
                if "temperature_c" in latest["values"]:
                    break
                time.sleep(0.5)
            assert "temperature_c" in latest["values"]
            # The demo person owns the simulated home, its devices placed in their rooms.
            password = (tmp_path / "demo-account").read_text().strip()
            grant = api.post(
                "/api/v1/auth/token",
                data={"grant_type": "password", "username": "demo@tosplus.local", "password": password},
            )
            assert grant.status_code == 200, grant.text
            person = {"Authorization": f"Bearer {grant.json()['access_token']}"}
            for _ in range(40):
                (home,) = api.get("/api/v1/homes", headers=person).json()["items"]
                if home["devices"] >= 10:
                    break
                time.sleep(0.5)
            detail = api.get(f"/api/v1/homes/{home['id']}", headers=person).json()
            rooms = {r["id"]: r["name"] for r in detail["rooms"]}
            placed = {d["name"]: rooms.get(d["room_id"]) for d in detail["devices"]}
            assert placed["Hallway thermostat"] == "Hallway" and placed["Kitchen fridge"] == "Kitchen"
            assert not any(d["labels"].get("site") == "city" for d in detail["devices"])
            # The demo's money: a wallet with 500.00, a shop the person runs, and the watch able to pay there.
            assert api.get("/api/v1/wallet", headers=person).json()["balance"] == 500_00
            (shop,) = api.get("/api/v1/merchants", headers=person).json()["items"]
            assert shop["name"] == "Corner Coffee (demo)"
            for _ in range(40):
                paying = api.get("/api/v1/wallet/payment-devices", headers=person).json()["items"]
                if paying:
                    break
                time.sleep(0.5)
            (watch,) = paying
            code = api.get(f"/api/v1/devices/{watch['device_id']}/payment-token/pay-code", headers=person).json()
            till = {
                "Authorization": f"Bearer {(tmp_path / 'demo-shop-key').read_text().strip()}",
                "Idempotency-Key": "k1",
            }
            paid = api.post(
                "/api/v1/merchant/micropay",
                json={"auth_code": code["code"], "amount": 18_00, "out_trade_no": "latte-1"},
                headers=till,
            )
            assert paid.status_code == 200 and paid.json()["state"] == "SUCCESS", paid.text
            assert api.get("/api/v1/wallet", headers=person).json()["balance"] == 500_00 - 18_00
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert f"http://127.0.0.1:{http_port}/api/v1" in output  # it says where the API is
    assert "Admin token" in output
    assert "demo@tosplus.local" in output and "/console/" in output and "Corner Coffee (demo)" in output
    assert f"http://127.0.0.1:{http_port}/console/tv.html#device=" in output and "simulate speak" in output
