"""A simulated home and a simulated city, created on a hub through its API and run until stopped.

The devices are created once and their credentials kept in ``state_file`` (JSON, mode 0600): running again
reuses the same devices. Delete the file to start over with new ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tosplus.sim import datasets
from tosplus.sim.behaviours import SimDevice, create_device
from tosplus.sim.provision import CredentialStore, DeviceCredentials, HubApi, ProvisioningError

log = logging.getLogger("tosplus.sim")


@dataclass(frozen=True, slots=True)
class PlannedDevice:
    """One device of a simulated place: ``key`` names it in the state file."""

    key: str
    product_id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)  # simulator state to start from


HOME_PLAN: tuple[PlannedDevice, ...] = (
    PlannedDevice("tv", "smart-tv", "Living room TV", {"site": "home", "room": "living-room"}),
    PlannedDevice("fridge", "fridge", "Kitchen fridge", {"site": "home", "room": "kitchen"}),
    PlannedDevice("watch", "smartwatch", "Alex's watch", {"site": "home", "owner": "alex"}),
    PlannedDevice("phone", "smartphone", "Alex's phone", {"site": "home", "owner": "alex"}),
    PlannedDevice("light-living-room", "light", "Living room light", {"site": "home", "room": "living-room"}),
    PlannedDevice("light-kitchen", "light", "Kitchen light", {"site": "home", "room": "kitchen"}),
    PlannedDevice("light-bedroom", "light", "Bedroom light", {"site": "home", "room": "bedroom"}),
    PlannedDevice("thermostat", "thermostat", "Hallway thermostat", {"site": "home", "room": "hallway"}),
    PlannedDevice("plug", "smart-plug", "Office plug", {"site": "home", "room": "office"}),
    PlannedDevice("speaker", "speaker", "Kitchen speaker", {"site": "home", "room": "kitchen"}),
)

# Where synthetic city devices stand when the Melbourne data set is absent (Melbourne CBD).
_CITY_CENTRE = (-37.8136, 144.9631)


def city_plan(
    parking_sensors: int = 6, street_lights: int = 4, *, datasets_dir: Path | None = None
) -> list[PlannedDevice]:
    """Parking sensors on real Melbourne bays (coordinates as labels), street lights along the same street,
    a traffic counter and an air-quality station."""
    plan: list[PlannedDevice] = []
    path = datasets.dataset_file(datasets.MELBOURNE_BAYS, datasets_dir)
    bays = datasets.load_melbourne_bays(path)[:parking_sensors] if path is not None else ()
    for i in range(parking_sensors):
        if i < len(bays):
            bay = bays[i]
            labels = {
                "site": "city",
                "bay_id": bay.bay_id,
                "marker": bay.marker,
                "lat": f"{bay.lat:.6f}",
                "lon": f"{bay.lon:.6f}",
            }
            plan.append(
                PlannedDevice(
                    f"parking-{bay.bay_id}",
                    "parking-sensor",
                    f"Parking bay {bay.bay_id}",
                    labels,
                    {"occupied": bay.occupied},
                )
            )
        else:
            lat, lon = _CITY_CENTRE[0] + 0.0004 * i, _CITY_CENTRE[1]
            plan.append(
                PlannedDevice(
                    f"parking-{i + 1}",
                    "parking-sensor",
                    f"Parking bay {i + 1}",
                    {"site": "city", "lat": f"{lat:.6f}", "lon": f"{lon:.6f}"},
                )
            )
    base_lat, base_lon = (bays[0].lat, bays[0].lon) if bays else _CITY_CENTRE
    for i in range(street_lights):
        lat, lon = base_lat + 0.00035 * i, base_lon + 0.0002 * i
        plan.append(
            PlannedDevice(
                f"street-light-{i + 1}",
                "street-light",
                f"Street light {i + 1}",
                {"site": "city", "lat": f"{lat:.6f}", "lon": f"{lon:.6f}"},
            )
        )
    plan.append(
        PlannedDevice(
            "traffic-counter",
            "traffic-counter",
            "Traffic counter I-94 (replay)",
            {"site": "city", "road": "I-94", "data": "metro-interstate-traffic-volume"},
        )
    )
    plan.append(
        PlannedDevice(
            "air-quality",
            "air-quality-station",
            "Air quality station (replay)",
            {"site": "city", "data": "air-quality-uci"},
        )
    )
    return plan


async def provision_plan(
    api: HubApi, plan: Sequence[PlannedDevice], store: CredentialStore
) -> list[tuple[PlannedDevice, DeviceCredentials]]:
    """Create what the state file does not have yet; ``[(planned, credentials)]`` for every usable device."""
    missing = [p for p in plan if store.get(p.key, p.product_id) is None]
    if missing:
        known = await api.product_ids()
        for planned in missing:
            if planned.product_id not in known:
                log.warning("the hub has no product %r: %s is not simulated", planned.product_id, planned.name)
                continue
            created = await api.create_device(planned.product_id, planned.name, planned.labels)
            store.put(planned.key, created)
            log.info("created %s (%s) as %s", planned.name, planned.product_id, created.id)
    out: list[tuple[PlannedDevice, DeviceCredentials]] = []
    for planned in plan:
        creds = store.get(planned.key, planned.product_id)
        if creds is not None:
            out.append((planned, creds))
    return out


async def _wait_for_hub(api: HubApi, stop: asyncio.Event, wait_s: float) -> tuple[str, int] | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            return await api.mqtt_endpoint()
        except ProvisioningError as exc:
            if "cannot be reached" not in str(exc) or loop.time() >= deadline:
                raise
            log.info("waiting for the hub at %s ...", api.api_url)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
            return None
        except TimeoutError:
            pass


async def _guard(device: SimDevice, stop: asyncio.Event) -> None:
    try:
        await device.run(stop)
    except Exception:
        log.exception("simulated %s %s stopped", device.product_id, device.device_id)


async def run_plan(
    api_url: str,
    token: str,
    plan: Sequence[PlannedDevice],
    *,
    stop: asyncio.Event,
    state_file: Path,
    period_s: float | None = None,
    speed: float = 1.0,
    http: httpx.AsyncClient | None = None,
    datasets_dir: Path | None = None,
    wait_for_hub_s: float = 30.0,
    client_options: dict[str, Any] | None = None,
) -> list[SimDevice]:
    """Create (or reuse) the planned devices and run them until ``stop`` is set; returns the simulators."""
    async with HubApi(api_url, token, client=http) as api:
        endpoint = await _wait_for_hub(api, stop, wait_for_hub_s)
        if endpoint is None:
            return []
        host, port = endpoint
        store = CredentialStore(state_file, api_url)
        usable = await provision_plan(api, plan, store)
    devices: list[SimDevice] = []
    for planned, creds in usable:
        device = create_device(
            planned.product_id,
            creds.id,
            creds.secret,
            host=host,
            port=port,
            period_s=period_s,
            speed=speed,
            labels=planned.labels,
            datasets_dir=datasets_dir,
            client_options=client_options,
        )
        device.state.update(planned.initial)
        devices.append(device)
    log.info("simulating %d devices on mqtt://%s:%d", len(devices), host, port)
    await asyncio.gather(*(_guard(d, stop) for d in devices))
    return devices


async def run_home(
    api_url: str,
    token: str,
    *,
    stop: asyncio.Event,
    state_file: Path,
    period_s: float | None = None,
    speed: float = 1.0,
    http: httpx.AsyncClient | None = None,
    client_options: dict[str, Any] | None = None,
) -> list[SimDevice]:
    """A home: TV, fridge, watch, phone, three lights (living room, kitchen, bedroom), thermostat, plug and
    speaker, created once (credentials in ``state_file``) and run until ``stop`` is set."""
    return await run_plan(
        api_url,
        token,
        HOME_PLAN,
        stop=stop,
        state_file=state_file,
        period_s=period_s,
        speed=speed,
        http=http,
        client_options=client_options,
    )


async def run_city(
    api_url: str,
    token: str,
    *,
    stop: asyncio.Event,
    state_file: Path,
    parking_sensors: int = 6,
    street_lights: int = 4,
    period_s: float | None = None,
    speed: float = 60.0,
    http: httpx.AsyncClient | None = None,
    datasets_dir: Path | None = None,
    client_options: dict[str, Any] | None = None,
) -> list[SimDevice]:
    """A city block: parking sensors on Melbourne bays, street lights, a traffic counter and an air-quality
    station replaying real data (``speed`` 60: an hour of data a minute)."""
    plan = city_plan(parking_sensors, street_lights, datasets_dir=datasets_dir)
    return await run_plan(
        api_url,
        token,
        plan,
        stop=stop,
        state_file=state_file,
        period_s=period_s,
        speed=speed,
        http=http,
        datasets_dir=datasets_dir,
        client_options=client_options,
    )
