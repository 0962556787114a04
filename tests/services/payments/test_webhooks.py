"""Webhooks against the real things: a SQLite file and PostgreSQL for the outbox, and a real HTTP receiver
(Starlette on uvicorn, on a free port) that records what arrives and fails when told to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.services.payments.receiver import Receiver
from tests.support.hubs import postgres_database
from tosplus.errors import InvalidInput, NotFound
from tosplus.services.payments.tables_webhooks import webhook_endpoints, webhook_outbox
from tosplus.services.payments.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Webhooks,
    enqueue,
    enqueue_for_owner,
    new_event,
    signature_header,
    verify_signature,
)
from tosplus.storage.engine import create_engine
from tosplus.storage.tables import metadata

MERCHANT = "m_1"


# --- the database -----------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A new SQLite file or PostgreSQL database holding just the webhook tables."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'webhooks.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[webhook_endpoints, webhook_outbox]))
        await engine.dispose()
        yield url


@contextlib.asynccontextmanager
async def webhooks(url: str, *, start: bool = True, **options: Any) -> AsyncIterator[Webhooks]:
    """A dispatcher on its own engine, as a hub process would have it; stopped and disposed on leaving."""
    engine = create_engine(url)
    hooks = Webhooks(engine, allow_insecure_urls=True, **{"base_delay_s": 0.05, **options})
    if start:
        hooks.start()
    try:
        yield hooks
    finally:
        await hooks.stop()
        await engine.dispose()


async def outbox(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(webhook_outbox).order_by(webhook_outbox.c.created_at))).all())


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the receiver and the database are polled, as a client would
            await asyncio.sleep(0.01)


async def rows_until(engine: AsyncEngine, condition: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
    async with asyncio.timeout(timeout):
        while not condition(rows := await outbox(engine)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return rows


# --- signatures -------------------------------------------------------------------------------------------------


def test_signature_verification_refuses_tampering_old_timestamps_and_wrong_secrets() -> None:
    body = b'{"id":"evt_1","type":"payment.succeeded","created":1,"data":{"amount":500}}'
    now = 1_700_000_000
    header = signature_header(["whsec_a"], body, now)
    assert verify_signature("whsec_a", header, body, now=now)
    assert verify_signature("whsec_a", header, body.decode(), now=now + 300)  # at the edge of the tolerance
    assert not verify_signature("whsec_a", header, body, now=now + 301)  # a replay, later
    assert not verify_signature("whsec_a", header, body, now=now - 301)  # a timestamp from the future
    assert verify_signature("whsec_a", header, body, tolerance_s=3600, now=now + 3000)
    assert not verify_signature("whsec_a", header, body.replace(b"500", b"501"), now=now)
    assert not verify_signature("whsec_b", header, body, now=now)
    # The timestamp is signed too: moving it forward to pass the tolerance breaks the signature.
    assert not verify_signature("whsec_a", header.replace(f"t={now}", f"t={now + 1000}"), body, now=now + 1000)
    two = signature_header(["whsec_new", "whsec_old"], body, now)
    assert two.count("v1=") == 2
    assert verify_signature("whsec_new", two, body, now=now)
    assert verify_signature("whsec_old", two, body, now=now)
    for broken in ("", "t=abc,v1=00", f"t={now}", "v1=" + header.split("v1=")[1], f"t={now},v0=" + "0" * 64):
        assert not verify_signature("whsec_a", broken, body, now=now)


def documented_verify() -> Callable[[str, str, bytes], bool]:
    """The verification function the merchants' page shows, run as it is written there."""
    page = (Path(__file__).parents[3] / "docs" / "payments-webhooks.md").read_text()
    code = page.split("### Verifying it", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return cast(Callable[[str, str, bytes], bool], namespace["verify"])


def test_the_documented_verification_agrees() -> None:
    verify = documented_verify()
    body = b'{"id":"evt_1","type":"refund.succeeded","created":1,"data":{"amount":100}}'
    now = int(time.time())
    assert verify("whsec_a", signature_header(["whsec_a"], body, now), body)
    assert verify("whsec_a", signature_header(["whsec_b", "whsec_a"], body, now), body)
    assert not verify("whsec_a", signature_header(["whsec_a"], body, now - 400), body)
    assert not verify("whsec_a", signature_header(["whsec_a"], body, now), body + b" ")
    assert not verify("whsec_b", signature_header(["whsec_a"], body, now), body)
    assert not verify("whsec_a", "t=x,v1=00", body)


def test_events_are_checked_before_anything_is_written() -> None:
    from tosplus.services.payments.webhooks import _event_row

    row = _event_row({"type": "payment.succeeded", "data": {"amount": 1}})
    assert row["event_id"].startswith("evt_") and json.loads(row["body"])["data"] == {"amount": 1}
    for bad in (
        {"type": "Payment Succeeded"},
        {"type": "payment"},
        {"type": "payment.succeeded", "extra": 1},
        {"type": "payment.succeeded", "id": "evt 1"},
        {"type": "payment.succeeded", "created": 1.5},
        {"type": "payment.succeeded", "data": [1]},
    ):
        with pytest.raises(ValueError):
            _event_row(bad)


# --- delivery ---------------------------------------------------------------------------------------------------


async def test_delivers_a_signed_event_at_once(db_url: str, receiver: Receiver) -> None:
    async with webhooks(db_url, poll_interval_s=10) as hooks:
        endpoint_id, secret = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        event = new_event("payment.succeeded", {"payment": "pay_1", "amount": 500, "currency": "CNY"})
        sent = time.monotonic()
        assert await hooks.enqueue_now(endpoint_id, event) == event["id"]
        await until(lambda: receiver.requests)
        assert receiver.requests[0].at - sent < 1.0  # woken by the enqueue, not by the (10 s) poll
        rows = await rows_until(hooks.engine, lambda rows: rows[0].state == "delivered")
    got = receiver.requests[0]
    assert verify_signature(secret, got.headers[SIGNATURE_HEADER.lower()], got.body)
    assert documented_verify()(secret, got.headers[SIGNATURE_HEADER.lower()], got.body)
    assert got.headers[EVENT_ID_HEADER.lower()] == event["id"]
    assert got.headers["content-type"] == "application/json"
    assert got.event == event
    assert got.body.decode() == rows[0].body  # the stored bytes are the signed bytes
    assert (rows[0].attempts, rows[0].last_status, rows[0].last_error, rows[0].lease_until) == (1, 200, None, None)
    [endpoint] = await hooks.endpoints(MERCHANT)
    assert (endpoint.id, endpoint.url, endpoint.enabled) == (endpoint_id, receiver.url("a"), True)
    assert not hasattr(endpoint, "secret")


async def test_events_live_and_die_with_the_callers_transaction(db_url: str, receiver: Receiver) -> None:
    async with webhooks(db_url, poll_interval_s=10) as hooks:
        a, secret_a = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        _, secret_b = await hooks.create_endpoint(MERCHANT, receiver.url("b"))
        await hooks.create_endpoint("m_other", receiver.url("other"))
        with pytest.raises(RuntimeError):
            async with hooks.engine.begin() as conn:
                await enqueue(conn, a, new_event("payment.succeeded", {"n": 1}))
                raise RuntimeError("the payment failed after its event was queued")
        event = new_event("refund.succeeded", {"refund": "re_1", "amount": 100})
        async with hooks.engine.begin() as conn:
            assert await enqueue_for_owner(conn, MERCHANT, event) == event["id"]
            assert await enqueue(conn, a, event) == event["id"]  # again: already queued, nothing more
        await until(lambda: len(receiver.requests) == 2, timeout=2.0)  # woken by the commit, not the poll
        await asyncio.sleep(0.2)
    assert sorted(r.path for r in receiver.requests) == ["/hooks/a", "/hooks/b"]
    assert {r.event["id"] for r in receiver.requests} == {event["id"]}  # one event, one id, two endpoints
    [got_a], [got_b] = receiver.to("a"), receiver.to("b")
    assert verify_signature(secret_a, got_a.headers[SIGNATURE_HEADER.lower()], got_a.body)
    assert verify_signature(secret_b, got_b.headers[SIGNATURE_HEADER.lower()], got_b.body)
    assert not verify_signature(secret_a, got_b.headers[SIGNATURE_HEADER.lower()], got_b.body)


async def test_failures_are_retried_with_growing_delays_under_one_event_id(db_url: str, receiver: Receiver) -> None:
    receiver.fail = 3
    async with webhooks(db_url, base_delay_s=0.1) as hooks:
        endpoint_id, secret = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        event_id = await hooks.enqueue_now(endpoint_id, new_event("payment.succeeded", {"amount": 500}))
        rows = await rows_until(hooks.engine, lambda rows: rows[0].state == "delivered")
    assert len(receiver.requests) == 4
    assert {r.headers[EVENT_ID_HEADER.lower()] for r in receiver.requests} == {event_id}
    assert len({r.body for r in receiver.requests}) == 1
    assert all(verify_signature(secret, r.headers[SIGNATURE_HEADER.lower()], r.body) for r in receiver.requests)
    gaps = [later.at - earlier.at for earlier, later in zip(receiver.requests, receiver.requests[1:], strict=False)]
    for gap, planned in zip(gaps, (0.1, 0.3, 0.9), strict=True):  # base * 3^n, jitter within ±20 %
        assert planned * 0.8 - 0.02 <= gap <= planned * 1.2 + 0.5, gaps
    assert (rows[0].attempts, rows[0].last_status, rows[0].last_error) == (4, 200, None)


async def test_an_event_fails_for_good_after_its_retry_window(db_url: str, receiver: Receiver) -> None:
    receiver.fail = 1000
    receiver.fail_status = 503
    async with webhooks(db_url, base_delay_s=0.05, max_age_s=0.5) as hooks:
        endpoint_id, _ = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        await hooks.enqueue_now(endpoint_id, new_event("payment.revoked", {"order": "o_1"}))
        rows = await rows_until(hooks.engine, lambda rows: rows[0].state == "failed")
        count = len(receiver.requests)
        await asyncio.sleep(0.3)
    assert len(receiver.requests) == count == rows[0].attempts >= 3
    assert (rows[0].last_status, rows[0].last_error) == (503, "HTTP 503")


async def test_a_slow_endpoint_times_out_and_is_retried(db_url: str, receiver: Receiver) -> None:
    receiver.delay_s = 1.0
    async with webhooks(db_url, timeout_s=0.2, base_delay_s=5) as hooks:
        endpoint_id, _ = await hooks.create_endpoint(MERCHANT, receiver.url("slow"))
        await hooks.enqueue_now(endpoint_id, new_event("payment.succeeded", {}))
        rows = await rows_until(hooks.engine, lambda rows: rows[0].attempts == 1)
    assert (rows[0].state, rows[0].last_status, rows[0].last_error) == ("pending", None, "no answer within 0.2 s")
    assert rows[0].next_attempt_at - rows[0].last_attempt_at >= 4000


async def test_a_pending_retry_survives_a_restart(db_url: str, receiver: Receiver) -> None:
    receiver.fail = 1
    async with webhooks(db_url, base_delay_s=1.0) as hooks:
        endpoint_id, secret = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        event_id = await hooks.enqueue_now(endpoint_id, new_event("payment.succeeded", {"amount": 1}))
        [row] = await rows_until(hooks.engine, lambda rows: rows[0].attempts == 1)
    assert (row.state, row.last_status, row.lease_until) == ("pending", 500, None)
    async with webhooks(db_url, base_delay_s=1.0) as restarted:  # a new process: new engine, new dispatcher
        [row] = await rows_until(restarted.engine, lambda rows: rows[0].state == "delivered")
    first, second = receiver.requests
    assert second.at - first.at >= 0.75  # the persisted backoff was kept, not restarted from zero
    assert first.headers[EVENT_ID_HEADER.lower()] == second.headers[EVENT_ID_HEADER.lower()] == event_id
    assert verify_signature(secret, second.headers[SIGNATURE_HEADER.lower()], second.body)
    assert row.attempts == 2


async def test_an_abandoned_attempt_is_released_for_the_next_dispatcher(db_url: str, receiver: Receiver) -> None:
    receiver.delay_s = 5.0
    async with webhooks(db_url) as hooks:
        endpoint_id, _ = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        await hooks.enqueue_now(endpoint_id, new_event("payment.succeeded", {}))
        await until(lambda: receiver.requests)
    receiver.delay_s = 0.0
    async with webhooks(db_url) as restarted:
        [row] = await rows_until(restarted.engine, lambda rows: rows[0].state == "delivered", timeout=3.0)
    assert len(receiver.requests) == 2 and row.attempts == 1  # the cut-off attempt was never recorded


async def test_disabled_endpoints_get_nothing(db_url: str, receiver: Receiver) -> None:
    async with webhooks(db_url, start=False) as hooks:
        a, _ = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        b, _ = await hooks.create_endpoint(MERCHANT, receiver.url("b"))
        queued = await hooks.enqueue_now(a, new_event("payment.succeeded", {"n": 1}))  # before the disable
        await hooks.disable(MERCHANT, a)
        await hooks.enqueue_now(a, new_event("payment.succeeded", {"n": 2}))
        both = await hooks.enqueue_now(b, new_event("payment.succeeded", {"n": 3}))
        async with hooks.engine.begin() as conn:
            await enqueue_for_owner(conn, MERCHANT, new_event("payment.succeeded", {"n": 4}))
        hooks.start()
        await until(lambda: len(receiver.requests) == 2)
        await asyncio.sleep(0.3)
        assert receiver.to("a") == [] and len(receiver.to("b")) == 2
        assert {(r.endpoint_id, r.event_id): r.state for r in await outbox(hooks.engine) if r.endpoint_id == a} == {
            (a, queued): "canceled"
        }
        assert any(r.event["id"] == both for r in receiver.to("b"))
        await hooks.enable(MERCHANT, a)
        await hooks.enqueue_now(a, new_event("payment.succeeded", {"n": 5}))
        await until(lambda: len(receiver.to("a")) == 1)
        assert receiver.to("a")[0].event["data"] == {"n": 5}
        with pytest.raises(NotFound):
            await hooks.disable("m_other", a)  # not theirs


async def test_rotating_a_secret(db_url: str, receiver: Receiver) -> None:
    async with webhooks(db_url) as hooks:
        endpoint_id, old = await hooks.create_endpoint(MERCHANT, receiver.url("a"))
        overlapping = await hooks.rotate_secret(MERCHANT, endpoint_id, overlap_s=3600)
        await hooks.enqueue_now(endpoint_id, new_event("payment.succeeded", {"n": 1}))
        await until(lambda: len(receiver.requests) == 1)
        at_once = await hooks.rotate_secret(MERCHANT, endpoint_id)  # a leak: the old one stops now
        await hooks.enqueue_now(endpoint_id, new_event("payment.succeeded", {"n": 2}))
        await until(lambda: len(receiver.requests) == 2)
        with pytest.raises(NotFound):
            await hooks.rotate_secret("m_other", endpoint_id)
    first, second = ((r.headers[SIGNATURE_HEADER.lower()], r.body) for r in receiver.requests)
    assert first[0].count("v1=") == 2
    assert verify_signature(old, *first) and verify_signature(overlapping, *first)
    assert second[0].count("v1=") == 1
    assert verify_signature(at_once, *second)
    assert not verify_signature(overlapping, *second) and not verify_signature(old, *second)


async def test_concurrency_is_capped_overall_and_to_one_per_endpoint(db_url: str, receiver: Receiver) -> None:
    receiver.delay_s = 0.15
    async with webhooks(db_url, start=False, concurrency=3) as hooks:
        endpoints = [(await hooks.create_endpoint(MERCHANT, receiver.url(f"e{n}")))[0] for n in range(6)]
        expected = [
            await hooks.enqueue_now(endpoints[n % 6], new_event("payment.succeeded", {"n": n})) for n in range(12)
        ]
        hooks.start()
        await until(lambda: len(receiver.requests) == 12)
        await rows_until(hooks.engine, lambda rows: all(r.state == "delivered" for r in rows))
    assert receiver.max_in_flight == 3
    assert receiver.max_per_path == 1
    assert sorted(r.event["id"] for r in receiver.requests) == sorted(expected)


async def test_two_dispatchers_never_deliver_one_event_twice(db_url: str, receiver: Receiver) -> None:
    receiver.delay_s = 0.03
    async with webhooks(db_url, start=False) as first, webhooks(db_url, start=False) as second:
        endpoints = [(await first.create_endpoint(MERCHANT, receiver.url(f"e{n}")))[0] for n in range(5)]
        expected = [
            await first.enqueue_now(endpoints[n % 5], new_event("payment.succeeded", {"n": n})) for n in range(30)
        ]
        first.start()
        second.start()
        await until(lambda: len(receiver.requests) >= 30, timeout=10)
        await asyncio.sleep(0.3)
    assert sorted(r.event["id"] for r in receiver.requests) == sorted(expected)  # each once
    assert receiver.max_per_path == 1


async def test_endpoint_urls_are_checked(db_url: str) -> None:
    async with webhooks(db_url, start=False) as lenient:
        strict = Webhooks(lenient.engine)
        for url in ("http://shop.example/hook", "https://127.0.0.1/hook", "https://10.1.2.3/x", "https://localhost/x"):
            with pytest.raises(InvalidInput):
                await strict.create_endpoint(MERCHANT, url)
        for url in ("ftp://shop.example/x", "https:///x", "https://shop.example/" + "x" * 2048):
            with pytest.raises(InvalidInput):
                await lenient.create_endpoint(MERCHANT, url)
        endpoint_id, secret = await strict.create_endpoint(MERCHANT, "https://shop.example/hooks/tosplus")
        assert endpoint_id.startswith("we_") and secret.startswith("whsec_")
        assert len(await lenient.endpoints(MERCHANT)) == 1


async def test_prune_removes_only_finished_rows(db_url: str, receiver: Receiver) -> None:
    receiver.fail = 1000
    async with webhooks(db_url, start=False) as hooks:
        ok, _ = await hooks.create_endpoint(MERCHANT, receiver.url("ok"))
        down, _ = await hooks.create_endpoint(MERCHANT, receiver.url("down"))
        await hooks.enqueue_now(ok, new_event("payment.succeeded", {}))
        await hooks.enqueue_now(down, new_event("payment.succeeded", {}))
        async with hooks.engine.begin() as conn:
            await conn.execute(
                sa.update(webhook_outbox).where(webhook_outbox.c.endpoint_id == ok).values(state="delivered")
            )
        assert await hooks.prune(older_than_s=3600) == 0
        assert await hooks.prune(older_than_s=-1, batch=1) == 1
        assert [r.endpoint_id for r in await outbox(hooks.engine)] == [down]
