"""Simulated devices, one class per catalog product, built on the device SDK.

A :class:`SimDevice` keeps its properties in ``state`` (named as in its thing model), advances them with
:meth:`SimDevice.step` (simulated seconds: wall time times ``speed``), and every ``period_s`` sends:

* telemetry: the values listed in ``telemetry_keys`` (by default the read-only numbers and booleans);
* reported state: the writable properties and ``status_keys`` that changed since last reported;
* the events raised by ``step`` (:meth:`SimDevice.emit`).

Desired state is applied through :meth:`SimDevice.apply_setting` (checked against the model first) and
reported back; every action of the model is a method ``action_<name>(params)``, so each simulator answers
all of its model's actions (``reboot`` included: the device goes offline for a moment and comes back).
Values are clamped to their schema's range before sending, so the hub never refuses a simulator's data.

Replays: the traffic counter and the air-quality station play the real hourly data sets (see
:mod:`tosplus.sim.datasets`), one data-set hour per simulated hour, starting at the current hour of day; the
parking sensors take how full parking is by hour of day from the Birmingham data. With ``speed`` 60 an
hour of data passes in a minute.
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
