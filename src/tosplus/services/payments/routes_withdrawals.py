"""Payment API routes for merchants: withdrawals of their balance to their bank (docs/payments.md).

A withdrawal moves money, so it takes an ``Idempotency-Key`` like every such call; its id is derived from the
key and the request, so a retry after a lost answer (even once the key has expired) finds the same withdrawal.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import HubDep
from tosplus.services.payments.idempotency import HEADER, StoredResponse, derived_id, fingerprint, idempotent
from tosplus.services.payments.routes import MerchantDep
from tosplus.services.payments.withdrawals import Withdrawals

router = APIRouter(tags=["payments"])


class WithdrawalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(description="fen (minor units); at most the merchant's available balance")
    bank_account: str = Field(max_length=40, description="the bank account (card) number to pay out to")


@router.post("/merchant/withdrawals", status_code=201)
async def withdraw(body: WithdrawalIn, request: Request, hub: HubDep, merchant: MerchantDep) -> Response:
    """Pay part or all of the available balance out to a bank account (``payout.paid`` webhook when done).
    Refused (409) beyond the available balance."""
    scope = f"merchant:{merchant.id}"
    digest = fingerprint(request.method, request.url.path, await request.body())
    withdrawal_id = "wdr_" + derived_id(scope, request.headers.get(HEADER, ""), digest)[:24]

    async def act() -> StoredResponse:
        made = await Withdrawals(hub).withdraw(merchant, body.amount, body.bank_account, withdrawal_id)
        return StoredResponse.of_json(made, 201)

    return await idempotent(request, hub.idempotency, scope, act)


@router.get("/merchant/withdrawals")
async def list_withdrawals(
    hub: HubDep, merchant: MerchantDep, limit: int = Query(default=50, ge=1, le=500), before: int | None = None
) -> dict[str, Any]:
    """The merchant's withdrawals, newest first."""
    return await Withdrawals(hub).listing(merchant, limit, before)
