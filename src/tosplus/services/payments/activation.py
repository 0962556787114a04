"""Enabling payment on a device by scanning the code it shows, and keeping the device told about its token.

Activation: a device that belongs to a home asks for a code (MQTT ``pay/activate/request`` → ``pay/activate/code``,
or ``POST /device/v1/payment-activation``) and shows it as text and as a QR code of ``tosplus:pay:<code>``. A
person of that home (owner or member; not a guest) sends it to ``POST /api/v1/payment-activations``: the device
gets a payment token paying from that person's wallet, exactly as ``Payments.enable`` does from the console.
The code is a binding code of its own kind (homes/binding.py ``DeviceCodes``: 40 bits, stored hashed, claimed
once), lives 5 minutes, and wrong codes count against the caller as wrong binding codes do. Every attempt,
refused or not, is in the audit log.

Delivery: the device's credentials ``{"status": "active", "token_number", "key", "confirm_above",
"per_payment_limit"}`` are published on ``pay/token`` (QoS 1, never retained: the key must not sit in the
broker) when the token is created and when the device asks (``pay/token/request``). Every later change goes the
same way: ``{"status": "suspended"}``, the credentials again on resume or new limits, ``{"status": "deleted"}``
(also when the device is unbound, before its connection is cut). A device asking without a token gets
``{"status": "none"}``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from tosplus.core import bus as events
from tosplus.core.bus import Event
from tosplus.core.tokens import Principal
from tosplus.errors import Conflict, Forbidden, InvalidInput, TosError
from tosplus.gateway import topics
from tosplus.services.homes.binding import CodeRefused, IssuedCode
from tosplus.services.homes.homes import GUEST, Membership
from tosplus.services.homes.limits import FailureLimiter
from tosplus.services.payments.service import PaymentToken, _check_limits

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)

KIND = "payment"  # the kind of these codes among the device codes
TTL_S = 300
URI_PREFIX = "tosplus:pay:"
UNBIND_NOTICE_S = 0.3  # how long an unbinding waits for "deleted" to reach a connected device before cutting it


def credentials(token: PaymentToken) -> dict[str, Any]:
    """What the device receives for an active token: its number and key, never the wallet."""
    return {
        "status": "active",
        "token_number": token.token_number,
        "key": base64.b64encode(token.key).decode(),
        "confirm_above": token.confirm_above,
        "per_payment_limit": token.per_payment_limit,
    }


def device_view(token: PaymentToken | None) -> dict[str, Any]:
    """The ``pay/token`` message for the token as it is now."""
    if token is None:
        return {"status": "none"}
    if token.status != "active":
        return {"status": token.status}
    return credentials(token)


class Activations:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.misses = FailureLimiter(10, 600, "payment activation codes")
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Answer devices' requests and tell devices about every change of their token."""
        self.hub.bus.listen(events.PAYMENT_REQUESTED, self._on_request)
        self.hub.payments.on_token_change.append(self._token_changed)

    # -- codes --------------------------------------------------------------------------------------------

    async def issue(self, device_id: str) -> IssuedCode:
        """A fresh activation code for the device to show (5 minutes, once)."""
        self.hub.registry.device(device_id)
        if device_id not in self.hub.people.homes.device_home:
            raise Conflict("this device belongs to no home: bind it to a home before enabling payment on it")
        if device_id in self.hub.payments.tokens:
            raise Conflict("payment is already enabled on this device; fetch its token instead")
        return await self.hub.people.binding.codes.issue(device_id, KIND, TTL_S, URI_PREFIX)

    async def activate(
        self,
        caller: Principal,
        code: str,
        client: str,
        *,
        per_payment_limit: int,
        daily_limit: int,
        confirm_above: int,
    ) -> PaymentToken:
        """Enable payment, from the caller's wallet, on the device that shows ``code``."""
        user_id = caller.user_id
        if user_id is None:
            raise InvalidInput("payment is enabled by a person, from their wallet: sign in with an account")
        _check_limits(per_payment_limit, daily_limit, confirm_above)
        self.misses.check(caller.id, client)
        limits = {"per_payment_limit": per_payment_limit, "daily_limit": daily_limit, "confirm_above": confirm_above}
        homes = self.hub.people.homes
        claimed: list[str] = []

        def member_of_home(device_id: str | None) -> Membership | None:
            home_id = homes.device_home.get(device_id) if device_id else None
            member = homes.membership(home_id, user_id) if home_id else None
            return member if member is not None and device_id and member.allows(device_id) else None

        def allowed(device_id: str) -> None:
            member = member_of_home(device_id)
            if member is None:
                # As for a wrong code: a stranger learns nothing about the device, and it counts as a miss.
                raise CodeRefused("no device is waiting with this code (it may be mistyped)", "unknown")
            claimed.append(device_id)
            if member.role == GUEST:
                raise Forbidden("guests cannot enable payment on a home's devices; ask a member of the home")
            if device_id in self.hub.payments.tokens:
                raise Conflict("payment is already enabled on this device")

        try:
            device_id = await self.hub.people.binding.codes.claim(code, (KIND,), allowed)
            token = await self.hub.payments.enable(user_id, device_id, **limits)
        except TosError as exc:
            if isinstance(exc, CodeRefused):
                self.misses.failed(caller.id, client)
            device = exc.device_id if isinstance(exc, CodeRefused) else (claimed[0] if claimed else None)
            # Recorded in the device's home only when the caller belongs to it: a stranger's attempt is not the
            # home's to see (operators see it in the hub's audit log).
            seen = device if member_of_home(device) is not None else None
            await self.hub.people.audit.record(
                caller,
                "payment.activation_refused",
                home_id=homes.device_home.get(seen) if seen else None,
                device_id=seen,
                detail={"reason": exc.reason if isinstance(exc, CodeRefused) else exc.detail},
                ip=client,
            )
            raise
        await self.hub.people.audit.record(
            caller,
            "payment.enabled",
            home_id=homes.device_home.get(device_id),
            device_id=device_id,
            detail={**limits, "via": "activation_code"},
            ip=client,
        )
        return token

    # -- talking to devices -------------------------------------------------------------------------------

    def _on_request(self, event: Event) -> None:
        device_id = event.device_id
        if not device_id:
            return
        answer_device = self.hub.people.answer_device
        if event.data.get("request") == "activate":

            async def code() -> dict[str, Any]:
                return (await self.issue(device_id)).to_json(with_qr=True)

            self._spawn(
                answer_device(device_id, "pay/activate/request", topics.payment_activation_code(device_id), code)
            )
        else:

            async def token() -> dict[str, Any]:
                return device_view(self.hub.payments.tokens.get(device_id))

            self._spawn(answer_device(device_id, "pay/token/request", topics.payment_token(device_id), token))

    def _token_changed(self, device_id: str, before: PaymentToken | None, after: PaymentToken | None) -> None:
        """Tell the device when what it may do changed (not for counters such as failed confirmations)."""
        if before is not None and after is not None and _shown(before) == _shown(after):
            return
        self.push(device_id, after)

    def push(self, device_id: str, token: PaymentToken | None) -> None:
        doc = device_view(token) if token is not None else {"status": "deleted"}
        try:
            self.hub.publisher.publish(topics.payment_token(device_id), orjson.dumps(doc), qos=1, retain=False)
        except Exception:  # the change is made; a device that missed it catches up when it reconnects
            log.exception("could not tell device %s about its payment token", device_id)

    async def on_unbind(self, device_id: str) -> None:
        """The device leaves its home: its token goes, and the device is told while it is still connected."""
        had_token = device_id in self.hub.payments.tokens
        await self.hub.payments.delete_token(device_id)
        if had_token and self.hub.presence.is_online(device_id):
            await asyncio.sleep(UNBIND_NOTICE_S)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _shown(token: PaymentToken) -> tuple[Any, ...]:
    """What the device's view depends on."""
    return (token.status, token.token_number, token.key, token.confirm_above, token.per_payment_limit)
