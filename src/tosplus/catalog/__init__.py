"""The built-in product catalog: one WoT thing model per product, ``<product-id>.json`` next to this file.

Read with :mod:`importlib.resources`, so it works the same from a source checkout and an installed wheel.
Every model passes :func:`tosplus.core.thing_model.parse_thing_model` (checked by tests/catalog).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

PRODUCT_IDS = (
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
)


def load_catalog() -> dict[str, dict[str, Any]]:
    """Product id → thing model document, for every ``*.json`` in this package (sorted by product id).

    A fresh copy each call: callers may change what they get.
    """
    out: dict[str, dict[str, Any]] = {}
    for entry in sorted(resources.files("tosplus.catalog").iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(".json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise ValueError(f"catalog entry {entry.name} is not a JSON object")
            out[entry.name.removesuffix(".json")] = doc
    return out
