"""Request bodies of the sessions API (docs/sessions.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairingStart(_Body):
    device_id: str = Field(max_length=64)
    msg_a: str = Field(max_length=64, description="SPAKE2 message A (base64), made from the code or a credential")
    credential_id: str | None = Field(default=None, max_length=32, description="pair again without a code")
    name: str = Field(default="phone", min_length=1, max_length=100, description="what the screen shows")


class PairingConfirm(_Body):
    confirm_a: str = Field(max_length=64, description="the controller's key confirmation (base64)")


class HomeSessionSettings(_Body):
    guests_may_control: bool


class AppLaunch(_Body):
    params: dict[str, Any] = Field(default_factory=dict, description="passed to the app as it starts")
