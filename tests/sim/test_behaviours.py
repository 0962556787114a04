"""The simulators without a broker: every product's data fits its thing model, and the physics is plausible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tosplus.catalog import PRODUCT_IDS
from tosplus.core.thing_model import DataSchema
from tosplus.sim import datasets
from tosplus.sim.behaviours import (
    BEHAVIOURS,
    AirQualityStation,
    Light,
    ParkingSensor,
    SimDevice,
    SmartTv,
    Thermostat,
    TrafficCounter,
    create_device,
)


def example(schema: DataSchema | None) -> Any:
    """A valid value for ``schema`` (only required members of objects)."""
    if schema is None:
        return {}
    if schema.enum is not None:
        return schema.enum[-1]
    lo = schema.minimum if schema.minimum is not None else 0
    hi = schema.maximum if schema.maximum is not None else lo + 10
    if schema.type == "boolean":
        return True
    if schema.type == "integer":
        return int((lo + hi) // 2)
    if schema.type == "number":
        return (lo + hi) / 2
    if schema.type == "string":
        return "x" * max(1, schema.min_length or 1)
    if schema.type == "object":
        return {name: example(schema.properties.get(name)) for name in schema.required}
    if schema.type == "array":
        return []
    return None


def simulator(product_id: str, **options: Any) -> SimDevice:
    return create_device(product_id, f"unit-{product_id}", "secret", seed=7, **options)


def test_every_catalog_product_has_a_simulator() -> None:
    assert sorted(BEHAVIOURS) == sorted(PRODUCT_IDS)
    with pytest.raises(ValueError):
        create_device("toaster", "x", "y")


@pytest.mark.parametrize("product_id", PRODUCT_IDS)
async def test_simulated_data_always_fits_the_model(product_id: str) -> None:
    sim = simulator(product_id, speed=60)
    model = sim.model
    assert model.check_values(sim.reported_state()) is None
    for _ in range(48):  # two simulated days in half-hour ticks
        sim.advance(1800)
        values = sim.telemetry()
        assert values, f"{product_id} sends no telemetry"
        assert model.check_values(values) is None, values
        assert model.check_values(sim.reported_state()) is None
        for name, data in sim.pending_events:
            assert model.check_event(name, data) is None, (name, data)
        sim.pending_events.clear()


@pytest.mark.parametrize("product_id", PRODUCT_IDS)
async def test_every_action_and_writable_property_is_handled(product_id: str) -> None:
    sim = simulator(product_id)
    if isinstance(sim, ParkingSensor):
        sim.state["occupied"] = False  # calibrating needs a free bay
    for name, action in sim.model.actions.items():
        params = example(action.input)
        assert sim.model.check_action(name, params) is None
        result = await sim.on_action(name, params)
        if action.output is not None:
            assert action.output.check(result, "result") is None, (name, result)
    with pytest.raises(ValueError):
        await sim.on_action("self_destruct", {})
    desired = {key: example(sim.model.properties[key]) for key in sim.writable}
    accepted = await sim.on_desired(desired, desired)
    assert accepted == {k: sim.state[k] for k in desired}
    assert sim.model.check_values(sim.reported_state()) is None
    refused = await sim.on_desired({sim.writable[0]: {"not": "valid"}, "nonsense": 1}, {})
    assert refused == {}


def test_thermostat_drifts_toward_target_and_runs_the_hvac() -> None:
    sim = Thermostat("t", "s", seed=1)
    sim.state.update(temperature_c=18.0, target_c=22.0, mode="heat")
    sim.advance(60)
    assert sim.state["hvac_running"] is True
    sim.advance(30 * 60)
    assert 21.0 <= sim.state["temperature_c"] <= 22.6
    sim.advance(3 * 3600)  # it holds the target
    assert abs(sim.state["temperature_c"] - 22.0) < 1.2
    sim.state.update(mode="cool", target_c=18.0)
    sim.advance(60)
    assert sim.state["hvac_running"] is True
    sim.advance(40 * 60)
    assert sim.state["temperature_c"] < 19.5
    sim.state["mode"] = "off"
    sim.advance(60)
    assert sim.state["hvac_running"] is False


def test_light_power_follows_brightness() -> None:
    sim = Light("l", "s", seed=1)
    sim.apply_setting("on", True)
    sim.apply_setting("brightness", 100)
    full = sim.state["power_w"]
    sim.apply_setting("brightness", 20)
    assert 0.3 < sim.state["power_w"] < full / 3
    sim.apply_setting("on", False)
    assert sim.state["power_w"] == pytest.approx(0.3)
    assert 8 < full < 12


async def test_tv_reacts_to_commands_and_settings() -> None:
    sim = SmartTv("tv", "s", seed=1)
    assert await sim.on_action("set_channel", {"channel": 42}) == {"channel": 42}
    assert sim.state["channel"] == 42 and sim.state["input"] == "tv"
    await sim.on_action("launch_app", {"app_id": "netflix", "params": {}})
    assert sim.state["app"] == "netflix" and sim.state["input"] == "app"
    await sim.on_action("key_press", {"key": "vol_up"})
    assert sim.state["volume"] == 25
    await sim.on_desired({"input": "hdmi1"}, {"input": "hdmi1"})
    assert sim.state["app"] == ""


def test_replays_use_the_real_data_when_present() -> None:
    if datasets.dataset_file(datasets.AIR_QUALITY) is None or datasets.dataset_file(datasets.TRAFFIC) is None:
        pytest.skip("the city data sets are not on this machine")
    aq = AirQualityStation("aq", "s", seed=3)
    assert aq.replaying
    row = aq.rows[aq._start].values
    assert set(aq.telemetry()) == set(row)
    assert aq.telemetry()["co_mg_m3"] == pytest.approx(row["co_mg_m3"], rel=0.05)
    traffic = TrafficCounter("tc", "s", seed=3)
    assert traffic.replaying
    assert traffic.flow_now() == traffic.rows[traffic._start].volume
    traffic.advance(3600)
    counted = traffic.telemetry()["vehicle_count"]
    first, second = traffic.rows[traffic._start].volume, traffic.rows[traffic._start + 1].volume
    assert 0.7 * min(first, second) - 50 <= counted <= 1.3 * max(first, second) + 50


def test_replays_fall_back_to_synthetic_values(tmp_path: Path) -> None:
    aq = AirQualityStation("aq", "s", datasets_dir=tmp_path)
    assert not aq.replaying and set(aq.telemetry()) == set(datasets.AIR_COLUMNS.values())
    traffic = TrafficCounter("tc", "s", datasets_dir=tmp_path)
    traffic.advance(600)
    assert not traffic.replaying and traffic.telemetry()["vehicle_count"] > 0
    parking = ParkingSensor("p", "s", datasets_dir=tmp_path)
    assert parking.occupancy_by_hour == datasets.SYNTHETIC_OCCUPANCY


def test_air_quality_reader_takes_the_original_uci_format(tmp_path: Path) -> None:
    original = (
        "Date;Time;CO(GT);PT08.S1(CO);NMHC(GT);C6H6(GT);PT08.S2(NMHC);NOx(GT);PT08.S3(NOx);NO2(GT);"
        "PT08.S4(NO2);PT08.S5(O3);T;RH;AH;;\n"
        "10/03/2004;18.00.00;2,6;1360;150;11,9;1046;166;1056;113;1692;1268;13,6;48,9;0,7578;;\n"
        "10/03/2004;19.00.00;-200;1292;112;9,4;955;103;1174;92;1559;972;13,3;47,7;0,7255;;\n"
        ";;;;;;;;;;;;;;;;\n"
    )
    path = tmp_path / "air-quality-uci.csv"
    path.write_text(original, encoding="utf-8")
    rows = datasets.load_air_quality(path)
    assert len(rows) == 2
    assert rows[0].values == {
        "co_mg_m3": 2.6,
        "no2_ug_m3": 113.0,
        "nox_ppb": 166.0,
        "c6h6_ug_m3": 11.9,
        "temperature_c": 13.6,
        "rh_pct": 48.9,
        "ah": 0.7578,
    }
    assert "co_mg_m3" not in rows[1].values  # -200: missing
    assert rows[0].at is not None and rows[0].at.hour == 18


def test_datasets_are_found_from_the_environment_or_by_walking_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared" / "datasets" / "city"
    shared.mkdir(parents=True)
    (shared / datasets.TRAFFIC).write_text("date_time,traffic_volume\n2012-10-02 09:00:00,5545\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.chdir(deep)
    assert datasets.dataset_file(datasets.TRAFFIC) == shared / datasets.TRAFFIC
    assert datasets.dataset_file(datasets.AIR_QUALITY) is None
    monkeypatch.setenv(datasets.ENV_VAR, str(shared))
    assert datasets.dataset_file(datasets.TRAFFIC) == shared / datasets.TRAFFIC
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nowhere"))
    assert datasets.find_datasets_dir() is None
