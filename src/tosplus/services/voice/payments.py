"""Spoken payments: "pay thirty yuan to the coffee shop" becomes a payment intent waiting for confirmation.

The intent pays from the caller's own wallet through one of their payment-enabled devices (the device spoken
to if it has the caller's payment token, else one in this home, else any of theirs), so the same limits apply as
for any intent. It is created in ``requires_confirmation`` and the device is asked to confirm
(``confirm_payment``); nothing moves until the person confirms there or in the console (``POST
/payment-intents/{id}/confirm``). The intent's ``created_by`` is ``voice``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from tosplus.errors import TosError
from tosplus.services.payments.intents import intents_of
from tosplus.services.payments.service import PaymentToken
from tosplus.services.voice.answers import join

if TYPE_CHECKING:
    from tosplus.services.voice.actions import Act, Outcome

_CURRENCY_ZH = {"CNY": "元", "USD": "美元", "EUR": "欧元"}


def _token(act: Act) -> PaymentToken | None:
    """The caller's payment token to pay with: the device spoken to, else one in this home, else any."""
    user = act.principal.user_id
    if user is None:
        return None
    mine = [t for t in act.hub.payments.tokens.values() if t.user_id == user and t.status == "active"]
    homes = act.hub.people.homes.device_home
    for choice in (
        [t for t in mine if t.device_id == act.device_id],
        [t for t in mine if homes.get(t.device_id) == act.home_id],
        mine,
    ):
        if choice:
            return sorted(choice, key=lambda t: t.created_at)[-1]
    return None


async def pay(act: Act) -> Outcome:
    slots = act.rec.slots
    said = str(slots["merchant"])
    found = act.slots.merchant(said)
    if not found:
        return act.fail("pay_no_merchant", name=said)
    if len(found) > 1:
        return act.fail("which_one", names=join(act.lang, [m.name for m in found]))
    merchant = act.hub.payments.merchants.get(found[0].id)
    if merchant is None:
        return act.fail("pay_no_merchant", name=said)
    currency = str(slots.get("currency") or merchant.currency)
    if currency != merchant.currency:
        return act.fail("pay_currency", merchant=merchant.name, currency=merchant.currency)
    amount = round(float(slots["amount"]) * 100) + int(slots.get("cents") or 0)
    token = _token(act)
    if token is None:
        return act.fail("pay_no_device")
    intent_id = "pi_" + secrets.token_hex(12)
    try:
        intent = await (await intents_of(act.hub)).create(
            merchant,
            token,
            intent_id,
            amount=amount,
            currency=merchant.currency,
            description="Voice payment",
            created_by="voice",
        )
    except TosError as exc:
        return act.fail("pay_refused", reason=exc.detail)
    device = act.hub.registry.devices.get(token.device_id)
    device_name = device.name if device else token.device_id
    act.done.append(
        {"device_id": token.device_id, "action": "payment_intent", "status": intent["status"], "detail": intent_id}
    )
    text = act.say(
        "pay_confirm",
        amount=f"{amount / 100:.2f}",
        currency=merchant.currency,
        currency_zh=_CURRENCY_ZH.get(merchant.currency, merchant.currency),
        merchant=merchant.name,
        device=device_name,
    )
    return act.finish(text, payment_intent={"id": intent_id, "status": intent["status"], "amount": amount})
