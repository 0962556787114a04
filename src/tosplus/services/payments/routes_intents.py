"""The payment intent API (docs/payments.md, "Payment intents"), for three callers:

- merchants (``Authorization: Bearer tmk_...``) create intents for a device, read and cancel them;
- people (bearer token) list what waits for their confirmation, confirm and cancel;
- devices create intents for themselves (a game sold on a TV), read and cancel them, under
  ``/device-payments``: not with HTTP Basic but with requests signed by the payment token's key, because the
  signature proves the request comes from the device that holds the token, covers the body, and cannot be
  replayed (a device secret sent in every request would prove none of that to the payment service).

Creating and confirming move (or commit to move) money and take an ``Idempotency-Key``; canceling may.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import Caller, HubDep
from tosplus.errors import Forbidden, InvalidInput, Unauthorized
from tosplus.services.payments import tables_intents as ti
from tosplus.services.payments.idempotency import HEADER, StoredResponse, derived_id, fingerprint, idempotent
from tosplus.services.payments.intents import Intents, intents_of
from tosplus.services.payments.routes import MerchantDep, _person
from tosplus.services.payments.service import PaymentToken

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["payments"])
DEVICE_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "TOSPLUS-Device", "TOSPLUS-Timestamp", "TOSPLUS-Signature"
SIGNATURE_WINDOW_S = 300  # a signed request is good this long either side of the hub's clock


def sign(key: bytes, timestamp: int | str, method: str, path: str, body: bytes) -> str:
    """A device's signature of a request: hex HMAC-SHA256(key, "<ts>.<METHOD>.<path>.<body>")."""
    return hmac.new(key, f"{timestamp}.{method.upper()}.{path}.".encode() + body, hashlib.sha256).hexdigest()


def check_signature(
    intents: Intents, device_id: str, timestamp: str, signature: str, request: tuple[str, str, bytes], now: float
) -> PaymentToken:
    """The device's payment token if ``request`` (method, path, body) carries a fresh signature of its key
    never seen before; :class:`Unauthorized` otherwise (:class:`Forbidden` for a suspended token).

    Each signature is accepted once: seen ones are remembered for twice the window, which covers every moment
    at which their timestamp is still accepted."""
    token = intents.payments.tokens.get(device_id)
    if token is None:
        raise Unauthorized("this device has no payment token: its owner must enable payment on it first")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise Unauthorized(f"{TIMESTAMP_HEADER} must be unix time in whole seconds")
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_S:
        raise Unauthorized(f"{TIMESTAMP_HEADER} is more than {SIGNATURE_WINDOW_S} s from the hub's clock: sign anew")
    method, path, body = request
    if len(signature) != 64 or not all(c in "0123456789abcdef" for c in signature):
        raise Unauthorized(f"{SIGNATURE_HEADER} must be 64 hex digits: HMAC-SHA256 of the request")
    if not hmac.compare_digest(sign(token.key, timestamp, method, path, body), signature):
        raise Unauthorized("the signature does not match this request and the device's payment key")
    seen = intents.seen_signatures
    while seen and next(iter(seen.values())) < now - 2 * SIGNATURE_WINDOW_S:
        seen.popitem(last=False)
    if signature in seen:
        raise Unauthorized("this signed request was already used: sign every request anew")
    seen[signature] = now
    if token.status != "active":
        raise Forbidden("payment on this device is suspended by its owner")
    return token


@dataclass(frozen=True, slots=True)
class SignedDevice:
    token: PaymentToken
    signature: str
    intents: Intents


async def signed_device(request: Request, hub: HubDep) -> SignedDevice:
    """The device that signed this request (see :func:`check_signature`)."""
    device_id, timestamp = request.headers.get(DEVICE_HEADER), request.headers.get(TIMESTAMP_HEADER)
    signature = (request.headers.get(SIGNATURE_HEADER) or "").strip().lower()
    if not device_id or not timestamp or not signature:
        raise Unauthorized(f"a signed request is required: {DEVICE_HEADER}, {TIMESTAMP_HEADER}, {SIGNATURE_HEADER}")
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    intents = await intents_of(hub)
    signed = (request.method, path, await request.body())
    token = check_signature(intents, device_id, timestamp, signature, signed, time.time())
    return SignedDevice(token, signature, intents)


DeviceDep = Annotated[SignedDevice, Depends(signed_device)]


class _IntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(description="fen (minor units)")
    currency: str = Field(max_length=8)
    description: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] | None = None

    def fields(self) -> dict[str, Any]:
        return self.model_dump(include={"amount", "currency", "description", "metadata"})


class MerchantIntentIn(_IntentIn):
    device_id: str = Field(max_length=64, description="the device whose owner is asked to pay")


class DeviceIntentIn(_IntentIn):
    merchant_id: str = Field(max_length=32, description="who is paid: the app's (or the partner's) merchant")


async def _intent_id(scope: str, request: Request) -> str:
    """The id of the intent this request creates, the same for every retry of it (same key, same request):
    an action repeated after its answer was lost finds its own intent instead of creating a second."""
    digest = fingerprint(request.method, request.url.path, await request.body())
    return "pi_" + derived_id(scope, request.headers.get(HEADER, ""), digest)[:24]


def _person_view(hub: Hub, intent: dict[str, Any]) -> dict[str, Any]:
    merchant = hub.payments.merchants.get(intent["merchant_id"])
    return ti.person_view(intent, merchant.name if merchant else None)


# -- merchants ---------------------------------------------------------------------------------------------------


@router.post("/merchant/payment-intents", status_code=201)
async def create_intent(body: MerchantIntentIn, request: Request, hub: HubDep, merchant: MerchantDep) -> Response:
    """Ask the owner of ``device_id`` to pay: the device shows a confirmation, the console lists it."""
    intents, scope = await intents_of(hub), f"merchant:{merchant.id}"

    async def act() -> StoredResponse:
        token = hub.payments.token_for_device(body.device_id)
        intent = await intents.create(merchant, token, await _intent_id(scope, request), **body.fields())
        return StoredResponse.of_json(ti.merchant_view(intent), 201)

    return await idempotent(request, hub.idempotency, scope, act)


@router.get("/merchant/payment-intents/{intent_id}")
async def merchant_intent(intent_id: str, hub: HubDep, merchant: MerchantDep) -> dict[str, Any]:
    return ti.merchant_view(await (await intents_of(hub)).owned(intent_id, merchant_id=merchant.id))


@router.post("/merchant/payment-intents/{intent_id}/cancel")
async def merchant_cancel(intent_id: str, request: Request, hub: HubDep, merchant: MerchantDep) -> Response:
    intents = await intents_of(hub)

    async def act() -> StoredResponse:
        intent = await intents.cancel(intent_id, "requested_by_merchant", merchant_id=merchant.id)
        return StoredResponse.of_json(ti.merchant_view(intent))

    return await idempotent(request, hub.idempotency, f"merchant:{merchant.id}", act, require_key=False)


# -- people ------------------------------------------------------------------------------------------------------


@router.get("/payment-intents")
async def my_intents(
    hub: HubDep, caller: Caller, status: str | None = None, limit: int = Query(default=50, ge=1, le=200)
) -> dict[str, Any]:
    """The caller's intents, newest first; ``?status=requires_confirmation``: what waits for them."""
    if status is not None and status not in ti.STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ti.STATUSES)}")
    async with hub.engine.connect() as conn:
        items = await ti.for_person(conn, _person(caller), status, limit)
    return {"items": [_person_view(hub, intent) for intent in items]}


@router.get("/payment-intents/{intent_id}")
async def my_intent(intent_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    return _person_view(hub, await (await intents_of(hub)).owned(intent_id, user_id=_person(caller)))


@router.post("/payment-intents/{intent_id}/confirm")
async def confirm_intent(intent_id: str, request: Request, hub: HubDep, caller: Caller) -> Response:
    """Pay now, from the wallet behind the device (the caller's): 402 with the reason if it cannot pay, and
    the intent stays confirmable."""
    intents, user_id = await intents_of(hub), _person(caller)

    async def act() -> StoredResponse:
        intent = await intents.confirm(intent_id, via="console", user_id=user_id, actor=caller)
        return StoredResponse.of_json(_person_view(hub, intent))

    return await idempotent(request, hub.idempotency, f"user:{user_id}", act)


@router.post("/payment-intents/{intent_id}/cancel")
async def cancel_intent(intent_id: str, request: Request, hub: HubDep, caller: Caller) -> Response:
    intents, user_id = await intents_of(hub), _person(caller)

    async def act() -> StoredResponse:
        intent = await intents.cancel(intent_id, "requested_by_customer", user_id=user_id)
        return StoredResponse.of_json(_person_view(hub, intent))

    return await idempotent(request, hub.idempotency, f"user:{user_id}", act, require_key=False)


# -- devices (signed requests) -----------------------------------------------------------------------------------


@router.post("/device-payments/payment-intents", status_code=201)
async def device_create(body: DeviceIntentIn, request: Request, hub: HubDep, device: DeviceDep) -> Response:
    """The device asks its owner to pay ``merchant_id`` (which must exist); the owner confirms on it."""
    scope = f"device:{device.token.device_id}"

    async def act() -> StoredResponse:
        merchant = hub.payments.merchants.get(body.merchant_id)
        if merchant is None:
            raise InvalidInput(f"no merchant {body.merchant_id}")
        intent_id = await _intent_id(scope, request)
        intent = await device.intents.create(
            merchant, device.token, intent_id, **body.fields(), created_by="device", signature=device.signature
        )
        return StoredResponse.of_json(ti.merchant_view(intent), 201)

    return await idempotent(request, hub.idempotency, scope, act)


@router.get("/device-payments/payment-intents/{intent_id}")
async def device_intent(intent_id: str, device: DeviceDep) -> dict[str, Any]:
    return ti.merchant_view(await device.intents.owned(intent_id, device_id=device.token.device_id))


@router.post("/device-payments/payment-intents/{intent_id}/cancel")
async def device_cancel(intent_id: str, device: DeviceDep) -> dict[str, Any]:
    """The app on the device withdraws its request (the person closed the purchase)."""
    intent = await device.intents.cancel(intent_id, "requested_by_device", device_id=device.token.device_id)
    return ti.merchant_view(intent)
