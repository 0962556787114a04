"""Enabling payment on a device with the activation code it shows (services/payments/activation.py).

``POST /payment-activations`` is the person's side; the device's side is MQTT ``pay/activate/request`` or
``POST /device/v1/payment-activation`` (gateway/http_device.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.services.payments.activation import Activations

router = APIRouter(tags=["payments"])


class ActivationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=64, description="the code the device shows (XXXX-XXXX), or its tosplus:pay: uri")
    per_payment_limit: int = 200_000
    daily_limit: int = 500_000
    confirm_above: int = 20_000


def activations(hub: Any) -> Activations:
    found: Activations = hub.activations
    return found


@router.post("/payment-activations", status_code=201)
async def activate(body: ActivationIn, request: Request, hub: HubDep, caller: Caller) -> dict[str, Any]:
    """Enable payment, from the caller's wallet, on the device showing ``code`` (owners and members of its home;
    guests are refused). A wrong, used or expired code is 404 with the reason; 10 misses in 10 minutes, 429."""
    code = body.code.strip()
    if code.lower().startswith("tosplus:pay:"):
        code = code[len("tosplus:pay:") :]
    token = await activations(hub).activate(
        caller,
        code,
        client_address(request),
        per_payment_limit=body.per_payment_limit,
        daily_limit=body.daily_limit,
        confirm_above=body.confirm_above,
    )
    return token.to_json()
