"""Payment API routes for the console (docs/payments.md, "Owner views (console)").

People: the devices that pay from their wallet, the wallet's history with balances, and the pay code a screen
device would show, for the console to show in its place. Merchants' owners (``owner_id``) and operators: a
merchant's orders, refunds and statements, and refunds made from the console, through the same code as the
merchant's own API (routes_refunds.py). Anyone else is told a merchant does not exist, exactly as for one that
does not, so merchant ids cannot be probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import Caller, HubDep
from tosplus.core.tokens import Principal
from tosplus.errors import Forbidden, InvalidInput, NotFound
from tosplus.services.payments import views
from tosplus.services.payments.idempotency import HEADER, check_key, derived_id
from tosplus.services.payments.refunds import REASON_MAX
from tosplus.services.payments.routes import _person
from tosplus.services.payments.routes_refunds import refund_answer, statement_answer
from tosplus.services.payments.service import Merchant

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["payments"])
NOT_YOURS = "this merchant does not exist, or you do not run it"


class OwnerRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(description="fen (minor units) to pay back; at most what is left to refund")
    reason: str | None = Field(default=None, max_length=REASON_MAX)
    out_refund_no: str | None = Field(
        default=None, max_length=64, description="the refund's number; by default one derived from the key"
    )


# -- people -------------------------------------------------------------------------------------------------------


@router.get("/wallet/payment-devices")
async def payment_devices(hub: HubDep, caller: Caller) -> dict[str, Any]:
    """The devices that pay from the caller's wallet: each token with its device (name, product, home), its
    limits and status, and what it spent today (UTC) against its daily limit."""
    return {"items": await views.payment_devices(hub, _person(caller))}


@router.get("/wallet/history")
async def wallet_history(
    hub: HubDep, caller: Caller, limit: int = Query(default=50, ge=1, le=500), before: int | None = None
) -> dict[str, Any]:
    """The wallet's movements, newest first, with kind, merchant, device and the balance after each."""
    return await views.wallet_history(hub, _person(caller), limit, before)


@router.get("/devices/{device_id}/payment-token/pay-code")
async def pay_code(device_id: str, hub: HubDep, caller: Caller) -> Response:
    """The pay code the device would show on its screen now (18 digits and a QR code), for the wallet's owner
    to show from the console; never for anyone else, and not while payment on the device is suspended."""
    token = hub.payments.tokens.get(device_id)
    if token is None or caller.user_id is None or token.user_id != caller.user_id:
        raise NotFound("payment is not enabled on this device, or it does not pay from your wallet")
    if token.status != "active":
        raise Forbidden("payment on this device is suspended: resume it to show a pay code")
    shown = await views.pay_code(hub, token)
    return _no_store(shown)


def _no_store(content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), media_type="application/json", headers={"Cache-Control": "no-store"})


# -- merchants, for their owners ----------------------------------------------------------------------------------


def _may_run(caller: Principal, merchant: Merchant) -> bool:
    return caller.is_operator or (caller.user_id is not None and merchant.owner_id == caller.user_id)


async def owned_merchant(merchant_id: str, request: Request, caller: Caller) -> Merchant:
    hub: Hub = request.app.state.hub
    merchant = hub.payments.merchants.get(merchant_id)
    if merchant is None or not _may_run(caller, merchant):
        raise NotFound(NOT_YOURS)
    return merchant


OwnedMerchant = Annotated[Merchant, Depends(owned_merchant)]


@router.get("/merchants")
async def list_merchants(hub: HubDep, caller: Caller) -> dict[str, Any]:
    """The merchants the caller runs (operators: every merchant), oldest first, with their balances."""
    found = views.merchants_of(hub, caller.user_id, everyone=caller.is_operator)
    return {"items": [await views.merchant_json(hub, m) for m in found]}


@router.get("/merchants/{merchant_id}")
async def get_merchant(hub: HubDep, merchant: OwnedMerchant) -> dict[str, Any]:
    return await views.merchant_json(hub, merchant)


@router.get("/merchants/{merchant_id}/orders")
async def merchant_orders(
    hub: HubDep,
    merchant: OwnedMerchant,
    limit: int = Query(default=50, ge=1, le=500),
    before: int | None = Query(default=None, description="created_at (ms) of the last order of the previous page"),
) -> dict[str, Any]:
    """The merchant's orders, newest first, with ``refunded_amount`` and ``refundable_amount``."""
    return await views.merchant_orders(hub, merchant, limit, before)


@router.get("/merchants/{merchant_id}/refunds")
async def merchant_refunds(
    hub: HubDep,
    merchant: OwnedMerchant,
    limit: int = Query(default=50, ge=1, le=500),
    before: int | None = None,
) -> dict[str, Any]:
    """The merchant's refunds, newest first."""
    return await views.merchant_refunds(hub, merchant, limit, before)


@router.get("/merchants/{merchant_id}/statements/{day}.csv", response_model=None)
async def merchant_statement_csv(day: str, hub: HubDep, merchant: OwnedMerchant) -> dict[str, Any] | Response:
    """The statement of ``day`` as CSV, exactly as ``GET /merchant/statements/{day}?format=csv``."""
    return await statement_answer(hub, merchant, day, "csv")


@router.get("/merchants/{merchant_id}/statements/{day}", response_model=None)
async def merchant_statement(
    day: str, hub: HubDep, merchant: OwnedMerchant, format: str = Query(default="json", pattern="^(json|csv)$")
) -> dict[str, Any] | Response:
    """The statement of ``day`` (YYYY-MM-DD, UTC), exactly as the merchant's own ``/merchant/statements``."""
    return await statement_answer(hub, merchant, day, format)


@router.post("/merchants/{merchant_id}/orders/{out_trade_no}/refunds", status_code=201)
async def refund_order(
    out_trade_no: str, body: OwnerRefundIn, request: Request, hub: HubDep, caller: Caller, merchant: OwnedMerchant
) -> Response:
    """Refund part or all of a paid order from the console, as the merchant's API does (``Idempotency-Key``
    required). Without ``out_refund_no`` the refund's number is derived from the key, so the same key gives the
    same refund even after the key's answer is forgotten."""
    key = request.headers.get(HEADER)
    if key is None:
        raise InvalidInput(f"{HEADER} header is required")
    scope = f"merchant:{merchant.id} by:{caller.id}"
    refund_no = body.out_refund_no or "console-" + derived_id(scope, check_key(key))
    return await refund_answer(request, hub, merchant, scope, out_trade_no, body.amount, refund_no, body.reason)
