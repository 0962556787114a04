"""The built-in product catalog: twelve thing models that the hub's validator accepts."""

from __future__ import annotations

import pytest

from tosplus.catalog import PRODUCT_IDS, load_catalog
from tosplus.core.thing_model import parse_thing_model

CATALOG = load_catalog()
MODELS = {pid: parse_thing_model(doc) for pid, doc in CATALOG.items()}
CITY = {"parking-sensor", "street-light", "traffic-counter", "air-quality-station"}


def test_all_twelve_products_are_there() -> None:
    assert sorted(CATALOG) == sorted(PRODUCT_IDS)
    assert len(CATALOG) == 12


@pytest.mark.parametrize("product_id", PRODUCT_IDS)
def test_model_parses_and_is_named_after_its_file(product_id: str) -> None:
    model = parse_thing_model(CATALOG[product_id])
    assert model.id == f"tos:{product_id}"
    assert model.title and model.properties
    assert model.category in ("home", "wearable", "city")
    assert (model.category == "city") is (product_id in CITY)
    assert model.screen is (product_id in ("smart-tv", "smartphone"))
    doc = CATALOG[product_id]
    assert isinstance(doc["tos:inactivityTimeoutS"], int) and isinstance(doc["tos:retentionDays"], int)
    if product_id in CITY:
        assert 900 <= model.inactivity_timeout_s <= 3600


@pytest.mark.parametrize("product_id", PRODUCT_IDS)
def test_model_can_be_controlled_and_reports_something(product_id: str) -> None:
    model = MODELS[product_id]
    writable = [k for k, s in model.properties.items() if not s.read_only]
    read_only = [k for k, s in model.properties.items() if s.read_only]
    assert writable, f"{product_id} has no writable property"
    assert "reboot" in model.actions and len(model.actions) >= 2, f"{product_id} needs actions beside reboot"
    assert model.events, f"{product_id} has no events"
    assert read_only, f"{product_id} reports nothing read-only"
    for name, schema in model.properties.items():
        assert schema.type is not None, f"{product_id}.{name} has no type"
        if schema.type in ("integer", "number") and schema.read_only:
            assert schema.unit or name in ("vehicle_count",), f"{product_id}.{name} has no unit"


def test_models_say_what_the_brief_and_the_simulators_rely_on() -> None:
    tv, light, thermo = MODELS["smart-tv"], MODELS["light"], MODELS["thermostat"]
    tv_settings = {"volume": 100, "channel": 5, "input": "hdmi2", "muted": True, "app": "netflix"}
    assert tv.check_desired(tv_settings) is None
    assert tv.check_desired({"volume": 101}) is not None
    assert tv.check_action("launch_app", {"app_id": "youtube", "params": {"video": "x"}}) is None
    assert tv.check_action("key_press", {"key": "teleport"}) is not None
    assert tv.check_action("reboot", {}) is None
    assert light.check_desired({"color_temp_k": 2200, "brightness": 0}) is None
    assert light.check_desired({"power_w": 3}) is not None  # read-only
    assert light.check_action("blink", {"times": 3}) is None
    assert thermo.check_desired({"target_c": 35, "mode": "auto"}) is None
    assert thermo.check_desired({"target_c": 36}) is not None
    assert thermo.check_desired({"hvac_running": True}) is not None
    assert MODELS["fridge"].properties["door_open"].read_only
    assert MODELS["fridge"].check_event("door_left_open", {"door": "fridge", "open_s": 120}) is None
    assert MODELS["smartwatch"].check_event("fall_detected", {"severity": "high"}) is None
    assert MODELS["street-light"].check_event("lamp_fault", {"code": "driver_failure"}) is None
    aq = MODELS["air-quality-station"]
    row = {
        "co_mg_m3": 2.6,
        "no2_ug_m3": 113,
        "nox_ppb": 166,
        "c6h6_ug_m3": 11.9,
        "temperature_c": 13.6,
        "rh_pct": 48.9,
        "ah": 0.7578,
    }
    assert aq.check_values(row) is None
    traffic = {"vehicle_count": 90, "avg_speed_kmh": 57.5, "occupancy_pct": 12.0}
    assert MODELS["traffic-counter"].check_values(traffic) is None
    assert MODELS["parking-sensor"].check_values({"occupied": True, "battery": 87}) is None
    assert MODELS["smartwatch"].check_values({"heart_rate": 72, "steps": 1234, "battery": 80}) is None
