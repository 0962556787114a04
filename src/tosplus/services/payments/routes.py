"""The payment API: wallets and top-ups (people), device payment tokens (people), merchants (operators), and the
counter (merchants, with their API key). Every call that moves money takes an ``Idempotency-Key``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import Caller, ControlDevice, HubDep, Operator, client_address
from tosplus.core.tokens import Principal
from tosplus.errors import Forbidden, InvalidInput, Unauthorized
from tosplus.services.payments.idempotency import StoredResponse, derived_id, idempotent, identify
from tosplus.services.payments.service import Merchant

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["payments"])
_bearer = HTTPBearer(auto_error=False)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopUp(_Body):
    amount: int = Field(description="fen (minor units)")
    card_number: str = Field(max_length=32)


class TokenLimits(_Body):
    per_payment_limit: int = 200_000
    daily_limit: int = 500_000
    confirm_above: int = 20_000


class TokenChange(_Body):
    status: str | None = None
    per_payment_limit: int | None = None
    daily_limit: int | None = None
    confirm_above: int | None = None


class MerchantCreate(_Body):
    name: str = Field(max_length=200)
    fee_bps: int = 60
    owner_id: str | None = None


class WebhookCreate(_Body):
    url: str = Field(max_length=2000)


class Micropay(_Body):
    auth_code: str = Field(max_length=32, description="the 18-digit pay code scanned from the device")
    amount: int = Field(description="fen (minor units)")
    out_trade_no: str = Field(max_length=64)
    description: str | None = Field(default=None, max_length=200)


def _person(caller: Principal) -> str:
    if caller.user_id is None:
        raise InvalidInput("wallets belong to people: sign in with an account")
    return caller.user_id


async def merchant_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Merchant:
    if credentials is None:
        raise Unauthorized("a merchant API key is required (Authorization: Bearer tmk_...)")
    merchant: Merchant = request.app.state.hub.payments.merchant_for_key(credentials.credentials)
    return merchant


MerchantDep = Annotated[Merchant, Depends(merchant_caller)]


def _wallet_json(account: Any) -> dict[str, Any]:
    return {
        "account": account.id,
        "currency": account.ledger,
        "balance": account.balance,
        "available": account.available,
        "pending": account.debits_pending,
    }


@router.get("/wallet")
async def wallet(hub: HubDep, caller: Caller) -> dict[str, Any]:
    return _wallet_json(await hub.payments.wallet(_person(caller)))


@router.get("/wallet/transfers")
async def wallet_transfers(
    hub: HubDep, caller: Caller, limit: int = Query(default=50, ge=1, le=500), before: int | None = None
) -> dict[str, Any]:
    account = (await hub.payments.wallet(_person(caller))).id
    items = await hub.payments.ledger.account_transfers(account, limit, before)
    return {"items": [{**t.to_json(), "direction": "in" if t.credit_account_id == account else "out"} for t in items]}


@router.post("/wallet/top-ups", status_code=201)
async def top_up(body: TopUp, request: Request, hub: HubDep, caller: Caller) -> Response:
    """Money from a (simulated) bank card; send an ``Idempotency-Key``: a retry never charges twice."""
    user_id = _person(caller)
    scope = f"user:{user_id}"

    async def act() -> StoredResponse:
        transfer_id = "topup:" + derived_id(scope, request.headers["Idempotency-Key"])
        account = await hub.payments.top_up(user_id, body.amount, body.card_number, transfer_id)
        await hub.people.audit.record(
            caller, "wallet.top_up", detail={"amount": body.amount}, ip=client_address(request)
        )
        return StoredResponse.of_json(_wallet_json(account), 201)

    return await idempotent(request, hub.idempotency, scope, act)


def _token_owner(hub: Hub, caller: Principal, device_id: str) -> None:
    token = hub.payments.token_for_device(device_id)
    if not caller.is_operator and token.user_id != caller.user_id:
        raise Forbidden("only the person whose wallet this device pays from can change its payment")


@router.post("/devices/{device_id}/payment-token", status_code=201)
async def enable_payment(
    device_id: str, body: TokenLimits, hub: HubDep, caller: ControlDevice, request: Request
) -> dict[str, Any]:
    """Let the device pay from the caller's wallet (the device fetches its token; it never learns the wallet)."""
    token = await hub.payments.enable(_person(caller), device_id, **body.model_dump())
    await hub.people.audit.record(
        caller,
        "payment.enabled",
        home_id=hub.people.homes.device_home.get(device_id),
        device_id=device_id,
        detail=body.model_dump(),
        ip=client_address(request),
    )
    return token.to_json()


@router.get("/devices/{device_id}/payment-token")
async def get_payment(device_id: str, hub: HubDep, _: ControlDevice) -> dict[str, Any]:
    return hub.payments.token_for_device(device_id).to_json()


@router.patch("/devices/{device_id}/payment-token")
async def change_payment(
    device_id: str, body: TokenChange, hub: HubDep, caller: ControlDevice, request: Request
) -> dict[str, Any]:
    """Suspend (device lost) or resume, or change the limits; the wallet and other devices are untouched."""
    _token_owner(hub, caller, device_id)
    changes = body.model_dump(exclude_none=True)
    token = await hub.payments.update_token(device_id, **changes)
    await hub.people.audit.record(
        caller,
        "payment.changed",
        home_id=hub.people.homes.device_home.get(device_id),
        device_id=device_id,
        detail=changes,
        ip=client_address(request),
    )
    return token.to_json()


@router.delete("/devices/{device_id}/payment-token", status_code=204)
async def delete_payment(device_id: str, hub: HubDep, caller: ControlDevice, request: Request) -> Response:
    _token_owner(hub, caller, device_id)
    await hub.payments.delete_token(device_id)
    await hub.people.audit.record(
        caller,
        "payment.deleted",
        home_id=hub.people.homes.device_home.get(device_id),
        device_id=device_id,
        ip=client_address(request),
    )
    return Response(status_code=204)


@router.post("/merchants", status_code=201)
async def create_merchant(body: MerchantCreate, hub: HubDep, _: Operator) -> dict[str, Any]:
    merchant, key = await hub.payments.create_merchant(body.name, body.owner_id, body.fee_bps)
    return {**merchant.to_json(), "api_key": key}


@router.post("/merchant/micropay")
async def micropay(body: Micropay, request: Request, hub: HubDep, merchant: MerchantDep) -> Response:
    """Charge the pay code the cashier scanned: SUCCESS now, or USERPAYING while the person confirms on the
    device (query the order); a refusal is 402 with the reason, and the order is CLOSED."""

    identity = await identify(request, f"merchant:{merchant.id}")
    answer, replayed = await hub.counter.pay_request(
        hub.idempotency, identity, merchant, body.auth_code, body.amount, body.out_trade_no, body.description
    )
    return answer.to_response(replayed=replayed)


@router.get("/merchant/orders/{out_trade_no}")
async def query_order(out_trade_no: str, hub: HubDep, merchant: MerchantDep) -> dict[str, Any]:
    order: dict[str, Any] = await hub.counter.query(merchant, out_trade_no)
    return order


@router.post("/merchant/orders/{out_trade_no}/reverse")
async def reverse_order(out_trade_no: str, request: Request, hub: HubDep, merchant: MerchantDep) -> Response:
    async def act() -> StoredResponse:
        return StoredResponse.of_json(await hub.counter.reverse(merchant, out_trade_no))

    return await idempotent(request, hub.idempotency, f"merchant:{merchant.id}", act)


@router.post("/merchant/webhooks", status_code=201)
async def create_webhook(body: WebhookCreate, hub: HubDep, merchant: MerchantDep) -> dict[str, Any]:
    """Payment events (payment.succeeded, .userpaying, .closed, .revoked) are POSTed here, signed with the
    returned secret (shown once); see docs/payments-webhooks.md."""
    endpoint_id, secret = await hub.webhooks.create_endpoint(merchant.id, body.url)
    return {"id": endpoint_id, "url": body.url, "secret": secret}


@router.get("/merchant/webhooks")
async def list_webhooks(hub: HubDep, merchant: MerchantDep) -> dict[str, Any]:
    endpoints = await hub.webhooks.endpoints(merchant.id)
    return {"items": [{"id": e.id, "url": e.url, "enabled": e.enabled, "created_at": e.created_at} for e in endpoints]}


@router.delete("/merchant/webhooks/{endpoint_id}", status_code=204)
async def disable_webhook(endpoint_id: str, hub: HubDep, merchant: MerchantDep) -> Response:
    await hub.webhooks.disable(merchant.id, endpoint_id)
    return Response(status_code=204)
