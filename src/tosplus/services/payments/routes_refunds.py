"""Payment API routes for merchants: refunds of paid orders and daily settlement statements (docs/payments.md).

A refund moves money, so it takes an ``Idempotency-Key`` like every such call; the merchant's ``out_refund_no``
makes it idempotent a second way, across keys (a till that lost its key still cannot refund twice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import HubDep
from tosplus.services.payments import statements
from tosplus.services.payments.idempotency import StoredResponse, idempotent
from tosplus.services.payments.refunds import REASON_MAX, Refunds
from tosplus.services.payments.routes import MerchantDep
from tosplus.services.payments.service import Merchant

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["payments"])


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(description="fen (minor units) to pay back; at most what is left to refund")
    out_refund_no: str = Field(max_length=64, description="the merchant's own number for this refund")
    reason: str | None = Field(default=None, max_length=REASON_MAX)


@router.post("/merchant/orders/{out_trade_no}/refunds", status_code=201)
async def refund(out_trade_no: str, body: RefundIn, request: Request, hub: HubDep, merchant: MerchantDep) -> Response:
    """Refund part or all of a paid (SUCCESS) order: the wallet gets ``amount`` back and the merchant its share
    of the fee. Refused (409) beyond what is left to refund, for an order that is not SUCCESS, or when the
    merchant's balance cannot cover it."""
    scope = f"merchant:{merchant.id}"
    return await refund_answer(
        request, hub, merchant, scope, out_trade_no, body.amount, body.out_refund_no, body.reason
    )


async def refund_answer(
    request: Request,
    hub: Hub,
    merchant: Merchant,
    scope: str,
    out_trade_no: str,
    amount: int,
    out_refund_no: str,
    reason: str | None,
) -> Response:
    """A refund through the idempotency store, answered 201; the merchant's route and its owner's (the console,
    routes_owner.py) both refund through this."""

    async def act() -> StoredResponse:
        made = await Refunds(hub).refund(merchant, out_trade_no, amount, out_refund_no, reason)
        return StoredResponse.of_json(made, 201)

    return await idempotent(request, hub.idempotency, scope, act)


@router.get("/merchant/orders/{out_trade_no}/refunds")
async def list_refunds(out_trade_no: str, hub: HubDep, merchant: MerchantDep) -> dict[str, Any]:
    """The order's refunds, oldest first, with ``refunded_amount`` and ``refundable_amount``."""
    return await Refunds(hub).listing(merchant, out_trade_no)


@router.get("/merchant/statements/{day}", response_model=None)
async def statement(
    day: str, hub: HubDep, merchant: MerchantDep, format: str = Query(default="json", pattern="^(json|csv)$")
) -> dict[str, Any] | Response:
    """Every posted movement of the merchant's account in one UTC day (YYYY-MM-DD), with the opening balance,
    totals per kind and the closing balance, reconciled with the ledger; ``format=csv`` for a spreadsheet."""
    return await statement_answer(hub, merchant, day, format)


async def statement_answer(hub: Hub, merchant: Merchant, day: str, format: str) -> dict[str, Any] | Response:
    """The statement of ``day`` as JSON, or as a CSV attachment; shared with the owner's route (the console)."""
    found = await statements.statement(hub.payments.engine, merchant, statements.parse_day(day))
    if format == "csv":
        filename = f"statement-{merchant.id}-{found.day.isoformat()}.csv"
        return Response(
            found.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return found.to_json()
