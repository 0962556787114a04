"""Delivering the webhook outbox: signatures, claims with leases, attempts, backoff with jitter.

The half of :mod:`tosplus.services.payments.webhooks` that talks to merchants' servers. A :class:`Dispatcher`
runs until cancelled: it leases due rows of ``webhook_outbox`` (at most ``concurrency`` in flight, one per
endpoint), POSTs each body exactly as stored with a fresh signature, and records the answer in the row, which
holds everything a retry needs: a restarted hub carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import secrets
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.services.payments.tables_webhooks import ERROR_MAX, webhook_endpoints, webhook_outbox

SIGNATURE_HEADER = "TOSPLUS-Signature"
EVENT_ID_HEADER = "TOSPLUS-Event-Id"
USER_AGENT = "TOSPLUS-Webhooks/1"
DEFAULT_TOLERANCE_S = 300
_CLAIM_LOCK = 0x7405_0001  # pg_advisory_xact_lock key serialising claims across hub processes

log = logging.getLogger("tosplus.payments.webhooks")
e, o = webhook_endpoints, webhook_outbox


def _sign(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets_: Sequence[str], body: bytes, t: int) -> str:
    """``t=<t>,v1=<sig>`` with one ``v1`` per secret (two while an old secret overlaps a rotation)."""
    return ",".join([f"t={t}", *(f"v1={_sign(s, t, body)}" for s in secrets_)])


def verify_signature(
    secret: str, header: str, body: bytes | str, tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` (the raw request body, before any JSON parsing) with ``secret``, at a
    time within ``tolerance_s`` of ``now`` (default: the clock) in either direction. The time check stops a
    captured request from being replayed later; the comparison is constant-time. What a merchant runs."""
    raw = body.encode() if isinstance(body, str) else body
    stamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if stamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        return False
    expected = _sign(secret, stamp, raw).encode()
    return any(hmac.compare_digest(expected, c.encode()) for c in candidates)


_running: weakref.WeakSet[Dispatcher] = weakref.WeakSet()
_armed: weakref.WeakSet[Connection] = weakref.WeakSet()


def wake_after_commit(conn: Connection | None) -> None:
    """Wake this process's dispatchers when ``conn``'s transaction commits, so a new event goes out at once
    instead of at the next poll. The hook runs just before the COMMIT itself, hence the dispatcher's re-poll."""
    if conn is None or conn in _armed:
        return
    _armed.add(conn)

    def committed(sync: Connection) -> None:
        _armed.discard(sync)
        for dispatcher in list(_running):
            dispatcher.notify()

    sa_event.listen(conn, "commit", committed, once=True)


@dataclass(frozen=True, slots=True)
class _Claim:
    endpoint_id: str
    event_id: str
    body: bytes
    attempts: int
    created_at: int
    url: str
    secrets: tuple[str, ...]
    lease_id: str


class Dispatcher:
    """The background task that delivers the outbox (``run``, or ``start`` and ``stop``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        concurrency: int = 16,
        timeout_s: float = 10.0,
        base_delay_s: float = 10.0,
        max_delay_s: float = 3600.0,
        max_age_s: float = 3 * 86400,
        poll_interval_s: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.engine = engine
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_age_ms = int(max_age_s * 1000)
        self.poll_interval_s = poll_interval_s
        # Longer than any attempt can take, so a lease runs out only when its hub died mid-delivery.
        self.lease_ms = int((timeout_s + 60) * 1000)
        self._wake = asyncio.Event()
        self._hinted = False
        self._soonest: int | None = None  # the earliest retry this process scheduled and has not yet claimed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Something was queued: look now rather than at the next poll. Safe from any thread."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(self._hint)

    def _hint(self) -> None:
        self._hinted = True
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="webhooks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Deliver due events until cancelled. Attempts in flight at cancellation are abandoned and their rows
        released for the next dispatcher (the merchant may have received them: at least once)."""
        self._loop = asyncio.get_running_loop()
        _running.add(self)
        in_flight: dict[asyncio.Task[None], _Claim] = {}

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.pop(task, None)
            self._wake.set()

        timeout = httpx.Timeout(self.timeout_s)
        limits = httpx.Limits(max_connections=self.concurrency)
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
            try:
                while True:
                    self._wake.clear()
                    hinted, self._hinted = self._hinted, False
                    if self._soonest is not None and self._soonest <= now_ms():
                        self._soonest = None  # due now: this round claims it
                    claimed: list[_Claim] = []
                    if len(in_flight) < self.concurrency:
                        try:
                            claimed = await self._claim(self.concurrency - len(in_flight))
                        except Exception:
                            log.exception("webhooks: could not claim due events; trying again")
                    for claim in claimed:
                        task = asyncio.create_task(self._deliver(client, claim))
                        in_flight[task] = claim
                        task.add_done_callback(finished)
                    if claimed and len(in_flight) < self.concurrency:
                        continue  # there may be more due
                    # A wake from a commit hook may come a moment before the commit is visible: look again soon.
                    wait_s = 0.05 if hinted and not claimed else self.poll_interval_s
                    if self._soonest is not None:  # our own retries go on time, not at the next poll
                        wait_s = min(wait_s, max(0.0, (self._soonest - now_ms()) / 1000))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait_s):
                            await self._wake.wait()
            finally:
                _running.discard(self)
                self._loop = None
                abandoned = list(in_flight.values())
                for task in list(in_flight):
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)
                await self._release(abandoned)

    async def _claim(self, slots: int) -> list[_Claim]:
        """Lease up to ``slots`` due rows, at most one per endpoint and none of an endpoint with a row in flight."""
        moment = now_ms()
        busy = sa.select(o.c.endpoint_id).where(o.c.lease_until >= moment)
        due = (
            o.c.state == "pending",
            o.c.next_attempt_at <= moment,
            sa.or_(o.c.lease_until.is_(None), o.c.lease_until < moment),
            o.c.endpoint_id.not_in(busy),
        )
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK)))
            rows = await conn.execute(
                sa.select(o.c.endpoint_id, o.c.event_id)
                .join(e, e.c.id == o.c.endpoint_id)
                .where(*due, e.c.enabled)
                .order_by(o.c.next_attempt_at)
                .limit(slots * 4)
            )
            picked: dict[str, str] = {}
            for endpoint_id, event_id in rows:
                picked.setdefault(endpoint_id, event_id)
                if len(picked) == slots:
                    break
            if not picked:
                return []
            lease_id = secrets.token_hex(16)
            keys = sa.tuple_(o.c.endpoint_id, o.c.event_id).in_(list(picked.items()))
            # The conditions again: on SQLite the select ran outside the write transaction.
            await conn.execute(
                sa.update(o).where(keys, *due).values(lease_until=moment + self.lease_ms, lease_id=lease_id)
            )
            won = await conn.execute(
                sa.select(o, e.c.url, e.c.secret, e.c.previous_secret, e.c.previous_until)
                .join(e, e.c.id == o.c.endpoint_id)
                .where(keys, o.c.lease_id == lease_id)
            )
            return [
                _Claim(
                    r.endpoint_id,
                    r.event_id,
                    r.body.encode(),
                    r.attempts,
                    r.created_at,
                    r.url,
                    (r.secret, r.previous_secret)
                    if r.previous_secret and (r.previous_until or 0) > moment
                    else (r.secret,),
                    lease_id,
                )
                for r in won
            ]

    async def _deliver(self, client: httpx.AsyncClient, claim: _Claim) -> None:
        """One attempt: POST, then record the answer (the row's lease keeps anyone else off it meanwhile)."""
        headers = {
            SIGNATURE_HEADER: signature_header(claim.secrets, claim.body, now_ms() // 1000),
            EVENT_ID_HEADER: claim.event_id,
        }
        status: int | None = None
        error: str | None = None
        retry_after: str | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                # Streamed and left unread: a merchant's answer body is not ours to download.
                async with client.stream("POST", claim.url, content=claim.body, headers=headers) as response:
                    status, retry_after = response.status_code, response.headers.get("Retry-After")
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
        try:
            await self._record(claim, status, error, retry_after)
        except Exception:
            log.exception("webhooks: could not record an attempt of %s; it will be sent again", claim.event_id)

    def backoff_s(self, attempts: int, retry_after: str | None = None) -> float:
        """The wait after the ``attempts``-th failed attempt: base * 3^(n-1), capped, ±20 % jitter so that the
        retries of an endpoint's outage do not all return at once; longer if the answer asked (Retry-After)."""
        delay: float = min(self.base_delay_s * 3.0 ** (attempts - 1), self.max_delay_s) * random.uniform(0.8, 1.2)
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), self.max_delay_s))
        return delay

    async def _record(self, claim: _Claim, status: int | None, error: str | None, retry_after: str | None) -> None:
        moment = now_ms()
        attempts = claim.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": moment,
            "last_status": status,
            "last_error": error,
            "lease_until": None,
            "lease_id": None,
        }
        if error is None:
            values.update(state="delivered", delivered_at=moment)
        else:
            retry_at = moment + int(self.backoff_s(attempts, retry_after) * 1000)
            if retry_at > claim.created_at + self.max_age_ms:
                values.update(state="failed")
                log.warning("webhooks: %s to %s failed after %d attempts", claim.event_id, claim.url, attempts)
            else:
                values.update(next_attempt_at=retry_at)
                self._soonest = retry_at if self._soonest is None else min(self._soonest, retry_at)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(o)
                .where(o.c.endpoint_id == claim.endpoint_id, o.c.event_id == claim.event_id)
                .where(o.c.state == "pending", o.c.lease_id == claim.lease_id)
                .values(**values)
            )

    async def _release(self, claims: list[_Claim]) -> None:
        """Free the rows of abandoned attempts now rather than when their leases run out."""
        if not claims:
            return
        try:
            async with self.engine.begin() as conn:
                for claim in claims:
                    await conn.execute(
                        sa.update(o)
                        .where(o.c.endpoint_id == claim.endpoint_id, o.c.event_id == claim.event_id)
                        .where(o.c.lease_id == claim.lease_id)
                        .values(lease_until=None, lease_id=None)
                    )
        except Exception:
            log.warning("webhooks: could not release %d claims; they go again when their leases end", len(claims))
