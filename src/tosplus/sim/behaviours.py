"""The simulators by product id (``BEHAVIOURS``) and ``create_device``.

What every simulator shares is :class:`tosplus.sim.device.SimDevice` (its docstring says how a simulated
device behaves); the product classes live in :mod:`tosplus.sim.home_devices` and
:mod:`tosplus.sim.city_devices`.
"""

from __future__ import annotations

from typing import Any

from tosplus.sim.city_devices import AirQualityStation, ParkingSensor, StreetLight, TrafficCounter
from tosplus.sim.device import SimDevice, conform, thing_model
from tosplus.sim.home_devices import Fridge, Light, Smartphone, SmartPlug, SmartTv, Smartwatch, Speaker, Thermostat

__all__ = [
    "BEHAVIOURS",
    "AirQualityStation",
    "Fridge",
    "Light",
    "ParkingSensor",
    "SimDevice",
    "SmartPlug",
    "SmartTv",
    "Smartphone",
    "Smartwatch",
    "Speaker",
    "StreetLight",
    "Thermostat",
    "TrafficCounter",
    "conform",
    "create_device",
    "thing_model",
]

BEHAVIOURS: dict[str, type[SimDevice]] = {
    cls.product_id: cls
    for cls in (
        SmartTv,
        Fridge,
        Smartwatch,
        Smartphone,
        Light,
        Thermostat,
        SmartPlug,
        Speaker,
        ParkingSensor,
        StreetLight,
        TrafficCounter,
        AirQualityStation,
    )
}


def create_device(product_id: str, device_id: str, secret: str, **options: Any) -> SimDevice:
    """A simulator for ``product_id`` (any keyword of :class:`SimDevice`)."""
    try:
        cls = BEHAVIOURS[product_id]
    except KeyError:
        raise ValueError(f"no simulator for product {product_id!r}; known: {sorted(BEHAVIOURS)}") from None
    return cls(device_id, secret, **options)
