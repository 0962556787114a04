"""The payment side of a device: activation codes, the payment token, pay codes and confirmation prompts.

A person enables payment on a device by scanning the code it shows (``request_activation``), or in the console.
The hub then sends the device its payment token on ``pay/token``: the token's public number, the pay-code key,
``confirm_above`` and ``per_payment_limit``. Never whose wallet it pays from. The key is kept in memory only
(the hub never retains it in the broker); a device that restarts asks again (``fetch_token``). Every change
the person makes (suspend, resume, new limits, delete, unbinding the device) is pushed on the same topic, so
the device stops showing codes at once. After the first ``fetch_token`` (or a pushed token) the SDK asks for
the token again on every reconnect, to catch up with what happened while it was offline.

Used through :attr:`tosplus.sdk.DeviceClient.payments`; imports nothing from the hub.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tosplus.sdk.errors import DeviceError
from tosplus.sdk.paycode import PayCodeGenerator

log = logging.getLogger("tosplus.sdk")

ACTIVATE_REQUEST, ACTIVATE_CODE = "pay/activate/request", "pay/activate/code"
TOKEN_REQUEST, TOKEN = "pay/token/request", "pay/token"
STATUSES = ("unknown", "none", "active", "suspended", "deleted")

Send = Callable[[str, bytes], None]
"""``send(topic suffix under the device, payload)``: queue a message to the hub."""
ConfirmHandler = Callable[["PaymentRequest"], Any]
"""``handler(request) -> bool`` (may be a coroutine function): True when the person confirmed the payment."""
ChangeHandler = Callable[[str, "PaymentCredentials | None"], Any]
"""``handler(status, credentials)`` after every change of the device's payment status or credentials."""


class PaymentError(DeviceError):
    """Payment is not possible on this device now; ``status`` says why (``none``, ``suspended``, ``deleted``,
    ``unknown``: the token was never fetched)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PaymentCredentials:
    """What the hub gives the device to show pay codes offline."""

    token_number: int
    key: bytes
    confirm_above: int  # fen: payments above this are confirmed on the device
    per_payment_limit: int  # fen

    def __repr__(self) -> str:  # the key stays out of logs
        return f"PaymentCredentials(token_number={self.token_number}, confirm_above={self.confirm_above}, ...)"


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A payment waiting for the person's confirmation on this device (the ``confirm_payment`` command)."""

    order_id: str
    amount: int  # fen
    currency: str
    merchant: str
    description: str


class DevicePayments:
    """One device's payment state, fed by the client's connection (see the module's docstring)."""

    def __init__(self, device_id: str, send: Send, on_command: Callable[[str, Any], Any]) -> None:
        self.device_id = device_id
        self._send = send
        self._on_command = on_command
        self.status = "unknown"
        self._credentials: PaymentCredentials | None = None
        self._codes: PayCodeGenerator | None = None
        self._following = False
        self._token_waiters: list[asyncio.Future[None]] = []
        self._code_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self._listeners: list[ChangeHandler] = []
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- asking the hub -----------------------------------------------------------------------------------

    async def request_activation(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """A code for a person to scan (or type) to enable payment on this device, which must belong to a home.

        Returns ``{"code": "ABCD-EFGH", "uri": "tosplus:pay:ABCDEFGH", "qr_svg": "<svg ...", "expires_at": ms,
        ...}`` (valid 5 minutes, once). Raises :class:`DeviceError` when the hub refuses (the device is in no
        home, or payment is enabled already) or does not answer within ``timeout_s``. Once the person has
        activated it, the token arrives by itself (:meth:`on_change`)."""
        self._following = True
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._code_waiters.append(waiter)
        self._send(ACTIVATE_REQUEST, b"{}")
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise DeviceError(f"{self.device_id}: no activation code from the hub within {timeout_s} s") from None
        finally:
            if waiter in self._code_waiters:
                self._code_waiters.remove(waiter)

    async def fetch_token(self, timeout_s: float = 10.0) -> PaymentCredentials | None:
        """Ask the hub for this device's payment token and wait for the answer; the credentials when payment is
        active, ``None`` otherwise (:attr:`status` says why). Raises :class:`DeviceError` on timeout."""
        self._following = True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._token_waiters.append(waiter)
        self._send(TOKEN_REQUEST, b"{}")
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise DeviceError(f"{self.device_id}: no payment token from the hub within {timeout_s} s") from None
        finally:
            if waiter in self._token_waiters:
                self._token_waiters.remove(waiter)
        return self.credentials

    def follow(self) -> None:
        """Keep up with this device's payment token without waiting: ask for it now (or when connected) and
        again after every reconnect. What arrives is kept, and :meth:`on_change` listeners are called."""
        self._following = True
        self._send(TOKEN_REQUEST, b"{}")

    # -- using it -----------------------------------------------------------------------------------------

    @property
    def credentials(self) -> PaymentCredentials | None:
        """The token's credentials while payment is active on this device, else ``None``."""
        return self._credentials if self.status == "active" else None

    def pay_code(self, now: float | None = None) -> str:
        """The 18-digit pay code to show now (it changes every minute). Raises :class:`PaymentError` when
        payment is not enabled, suspended or deleted, or the token was never fetched."""
        return self._generator().current(now)

    def next_pay_code(self, now: float | None = None) -> str:
        """The shown code was used (or the person asked for a new one): the next code."""
        return self._generator().next_after_use(now)

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until the shown code changes by itself."""
        return self._generator().seconds_left(now)

    def _generator(self) -> PayCodeGenerator:
        if self.status != "active" or self._codes is None:
            raise PaymentError(_REFUSALS.get(self.status, _REFUSALS["unknown"]), self.status)
        return self._codes

    def on_confirm(self, handler: ConfirmHandler) -> ConfirmHandler:
        """Ask the person to confirm a payment the hub sends (a large one at the counter, an app's purchase):
        ``handler(request)`` shows it (amount, merchant, description), asks for a PIN or yes/no, and returns
        True to pay or False to decline. Raising declines too. Answers the ``confirm_payment`` command."""

        async def confirm(params: Any) -> dict[str, bool]:
            doc = params if isinstance(params, dict) else {}
            request = PaymentRequest(
                str(doc.get("order_id", "")),
                int(doc.get("amount", 0)),
                str(doc.get("currency", "")),
                str(doc.get("merchant", "")),
                str(doc.get("description", "")),
            )
            answer = handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
            return {"confirmed": answer is True}

        self._on_command("confirm_payment", confirm)
        return handler

    def on_change(self, handler: ChangeHandler) -> ChangeHandler:
        """Call ``handler(status, credentials)`` whenever the token arrives or its status changes."""
        self._listeners.append(handler)
        return handler

    # -- fed by the client --------------------------------------------------------------------------------

    def connected(self) -> None:
        """A (re)connect: what was pushed while offline is lost, so ask again if this device pays."""
        if self._following:
            self._send(TOKEN_REQUEST, b"{}")

    def receive(self, suffix: str, payload: bytes | bytearray) -> None:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            log.warning("%s: unreadable message on %s, ignored", self.device_id, suffix)
            return
        if suffix == ACTIVATE_CODE:
            waiters, self._code_waiters = self._code_waiters, []
            for code_waiter in waiters:
                if not code_waiter.done():
                    code_waiter.set_result(doc)
        elif suffix == TOKEN:
            self._following = True
            self._update(doc)
            waiters_, self._token_waiters = self._token_waiters, []
            for waiter in waiters_:
                if not waiter.done():
                    waiter.set_result(None)

    def refused(self, doc: dict[str, Any]) -> None:
        """The hub refused a payment request (on the errors topic): fail whoever waits for its answer."""
        topic, reason = str(doc.get("topic", "")), str(doc.get("reason"))
        waiters: list[asyncio.Future[Any]]
        if topic.endswith("/" + ACTIVATE_REQUEST):
            waiters, self._code_waiters = list(self._code_waiters), []
            error = f"{self.device_id}: no activation code: {reason}"
        elif topic.endswith("/" + TOKEN_REQUEST):
            waiters, self._token_waiters = list(self._token_waiters), []
            error = f"{self.device_id}: no payment token: {reason}"
        else:
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(DeviceError(error))

    def _update(self, doc: dict[str, Any]) -> None:
        status = doc.get("status")
        if status == "active":
            try:
                credentials = PaymentCredentials(
                    int(doc["token_number"]),
                    base64.b64decode(doc["key"], validate=True),
                    int(doc["confirm_above"]),
                    int(doc["per_payment_limit"]),
                )
                codes = self._codes
                if codes is None or (codes.token_number, self._key()) != (credentials.token_number, credentials.key):
                    codes = PayCodeGenerator(credentials.token_number, credentials.key)
            except (KeyError, TypeError, ValueError, binascii.Error) as exc:
                log.warning("%s: unusable payment token from the hub (%s), ignored", self.device_id, exc)
                return
            self._credentials, self._codes = credentials, codes
        elif status in ("none", "suspended", "deleted"):
            if status != "suspended":  # a suspended token keeps its key for when it is resumed
                self._credentials, self._codes = None, None
        else:
            log.warning("%s: unknown payment status %r, ignored", self.device_id, status)
            return
        self.status = str(status)
        log.info("%s: payment is %s", self.device_id, self.status)
        for listener in list(self._listeners):
            try:
                result = listener(self.status, self.credentials)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("%s: payment change handler failed", self.device_id)

    def _key(self) -> bytes | None:
        return self._credentials.key if self._credentials is not None else None


_REFUSALS = {
    "unknown": "payment has not been set up on this device yet (fetch its token first)",
    "none": "payment is not enabled on this device",
    "suspended": "payment on this device is suspended by its owner",
    "deleted": "payment on this device was turned off by its owner",
}
