"""Request bodies of the API (responses are the services' own JSON shapes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProductCreate(Strict):
    id: str = Field(description="Product id: lowercase letters, digits and '-'.", examples=["acme-lamp"])
    name: str = Field(min_length=1, max_length=200)
    manufacturer: str = Field(min_length=1, max_length=200)
    thing_model: dict[str, Any] = Field(description="A WoT-style thing model (see docs/protocol.md).")
    fleet_provisioning: bool = Field(default=False, description="Issue a provisioning key for self-registration.")


class ThingModelReplace(Strict):
    thing_model: dict[str, Any]


class DeviceCreate(Strict):
    product_id: str
    name: str = Field(default="", max_length=200)
    id: str | None = Field(default=None, description="Optional device id; generated when absent.")
    labels: dict[str, str] = Field(default_factory=dict)


class DeviceBulkCreate(Strict):
    product_id: str
    count: int = Field(ge=1, le=10_000)
    name_prefix: str = Field(default="", max_length=150)
    labels: dict[str, str] = Field(default_factory=dict)


class DeviceUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    labels: dict[str, str] | None = None
    enabled: bool | None = None


class ProvisionRequest(Strict):
    product_id: str
    provisioning_key: str
    serial: str = Field(min_length=1, max_length=128)


class CommandCreate(Strict):
    name: str = Field(min_length=1, max_length=128)
    params: Any = None
    timeout_s: float | None = Field(default=None, gt=0, le=300)
    persistent: bool = False
    expires_in_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    wait: bool = Field(default=True, description="Wait for the device's answer (up to timeout_s).")
