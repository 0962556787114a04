"""Idempotency keys against the real databases (a SQLite file and PostgreSQL), and the fingerprint's
canonical JSON as properties."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.hubs import postgres_database
from tosplus.api import problems
from tosplus.errors import Conflict, Forbidden, InvalidInput, RateLimited
from tosplus.services.payments.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    Idempotency,
    KeyInProgress,
    KeyReused,
    StoredResponse,
    check_key,
    derived_id,
    fingerprint,
    idempotent,
)
from tosplus.services.payments.tables_idempotency import idempotency_keys
from tosplus.storage.engine import create_engine
from tosplus.storage.tables import metadata

DAY_MS = 86_400_000
T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@contextlib.asynccontextmanager
async def idempotency_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database holding just the idempotency table: a new SQLite file or PostgreSQL database."""
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'idempotency.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[idempotency_keys]))
        await engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def idempotency_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with idempotency_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def idempotency_engine(idempotency_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(idempotency_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def idempotency_clock() -> Clock:
    return Clock()


@pytest.fixture
def idempotency_store(idempotency_engine: AsyncEngine, idempotency_clock: Clock) -> Idempotency:
    return Idempotency(idempotency_engine, clock=idempotency_clock)


class Counted:
    """An action that counts its runs and answers 201 with the run's number."""

    def __init__(self, delay_s: float = 0.0, answer: Callable[[int], Awaitable[StoredResponse]] | None = None) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.answer = answer

    async def __call__(self) -> StoredResponse:
        self.calls += 1
        number = self.calls
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.answer is not None:
            return await self.answer(number)
        return StoredResponse.of_json({"transfer": number, "amount": 500}, 201, (("Location", f"/t/{number}"),))


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(idempotency_keys))).all())


FP = fingerprint("POST", "/api/v1/payments", {"amount": 500, "currency": "CNY"})
OTHER_FP = fingerprint("POST", "/api/v1/payments", {"amount": 501, "currency": "CNY"})


async def test_first_call_acts_and_stores_then_a_retry_replays(
    idempotency_store: Idempotency, idempotency_engine: AsyncEngine
) -> None:
    action = Counted()
    first, replayed = await idempotency_store.run("user:u1", "k-1", FP, action)
    assert (first.status, replayed, action.calls) == (201, False, 1)
    [row] = await rows(idempotency_engine)
    assert (row.state, row.status, bytes(row.body), row.lock_id) == ("done", 201, first.body, None)
    assert row.expires_at == T0 + DAY_MS

    again, replayed = await idempotency_store.run("user:u1", "k-1", FP, action)
    assert replayed is True
    assert again == first  # status, body, media type and headers
    assert action.calls == 1


async def test_the_same_key_for_a_different_request_is_refused(idempotency_store: Idempotency) -> None:
    action = Counted()
    await idempotency_store.run("user:u1", "k-1", FP, action)
    with pytest.raises(KeyReused, match="used for a different request") as caught:
        await idempotency_store.run("user:u1", "k-1", OTHER_FP, action)
    assert isinstance(caught.value, Conflict) and caught.value.status == 409
    assert action.calls == 1


async def test_keys_are_independent_per_scope(idempotency_store: Idempotency) -> None:
    action = Counted()
    a, replayed_a = await idempotency_store.run("user:u1 POST /pay", "same", FP, action)
    b, replayed_b = await idempotency_store.run("user:u2 POST /pay", "same", OTHER_FP, action)
    assert (replayed_a, replayed_b, action.calls) == (False, False, 2)
    assert a != b
    assert (await idempotency_store.run("user:u2 POST /pay", "same", OTHER_FP, action)) == (b, True)


async def test_fifty_concurrent_requests_with_one_key_act_once(idempotency_store: Idempotency) -> None:
    action = Counted(delay_s=0.2)

    async def call(delay_s: float) -> tuple[StoredResponse, bool] | Exception:
        await asyncio.sleep(delay_s)
        try:
            return await idempotency_store.run("merchant:m1", "pay-42", FP, action)
        except KeyInProgress as exc:
            return exc

    first_wave = [call(0) for _ in range(25)]
    second_wave = [call(0.2 + i * 0.01) for i in range(25)]  # some arrive after the answer is stored
    results = await asyncio.gather(*first_wave, *second_wave)
    assert action.calls == 1
    fresh = [r for r in results if isinstance(r, tuple) and not r[1]]
    replays = [r for r in results if isinstance(r, tuple) and r[1]]
    busy = [r for r in results if isinstance(r, KeyInProgress)]
    assert len(fresh) == 1 and len(fresh) + len(replays) + len(busy) == 50
    assert all(answer == fresh[0][0] for answer, _ in replays)
    assert any(isinstance(r, KeyInProgress) for r in results[:25])
    assert all(exc.retry_after_s == 1 and exc.status == 409 for exc in busy)
    assert "still being processed" in busy[0].detail
    # Once it has settled, everyone gets the first answer.
    assert await idempotency_store.run("merchant:m1", "pay-42", FP, action) == (fresh[0][0], True)


async def test_several_hubs_on_one_database_act_once(idempotency_url: str) -> None:
    """Separate engines stand for separate hub processes: only the database can decide between them."""
    engines = [create_engine(idempotency_url) for _ in range(3)]
    try:
        stores = [Idempotency(engine) for engine in engines]
        runs = 0

        async def action() -> StoredResponse:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.05)
            return StoredResponse.of_json({"ok": True})

        async def call(i: int) -> str:
            await asyncio.sleep(random.Random(i).random() * 0.2)
            try:
                _, replayed = await stores[i % 3].run("merchant:m1", "k", FP, action)
            except KeyInProgress:
                return "busy"
            return "replay" if replayed else "fresh"

        outcomes = await asyncio.gather(*(call(i) for i in range(60)))
        assert runs == 1 and outcomes.count("fresh") == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_an_exception_frees_the_key_so_a_retry_acts(
    idempotency_store: Idempotency, idempotency_engine: AsyncEngine
) -> None:
    calls = 0

    async def failing() -> StoredResponse:
        nonlocal calls
        calls += 1
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        await idempotency_store.run("user:u1", "k", FP, failing)
    assert await rows(idempotency_engine) == []
    action = Counted()
    answer, replayed = await idempotency_store.run("user:u1", "k", FP, action)
    assert (answer.status, replayed, action.calls, calls) == (201, False, 1, 1)


async def test_a_5xx_answer_is_not_stored(idempotency_store: Idempotency, idempotency_engine: AsyncEngine) -> None:
    async def unavailable(_n: int) -> StoredResponse:
        return StoredResponse.of_json({"detail": "bank unreachable"}, 503)

    action = Counted(answer=unavailable)
    answer, replayed = await idempotency_store.run("user:u1", "k", FP, action)
    assert (answer.status, replayed) == (503, False)
    assert await rows(idempotency_engine) == []
    await idempotency_store.run("user:u1", "k", FP, action)
    assert action.calls == 2


async def test_a_client_error_is_stored_and_replayed(idempotency_store: Idempotency) -> None:
    calls = 0

    async def refused() -> StoredResponse:
        nonlocal calls
        calls += 1
        raise Forbidden("this payment token is suspended")

    first, replayed = await idempotency_store.run("user:u1", "k", FP, refused)
    assert (first.status, first.media_type, replayed) == (403, problems.MEDIA_TYPE, False)
    assert json.loads(first.body) == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "this payment token is suspended",
    }
    assert await idempotency_store.run("user:u1", "k", FP, refused) == (first, True)
    assert calls == 1


async def test_try_again_later_is_not_stored(idempotency_store: Idempotency, idempotency_engine: AsyncEngine) -> None:
    async def limited() -> StoredResponse:
        raise RateLimited("too many payments", retry_after_s=5)

    with pytest.raises(RateLimited):
        await idempotency_store.run("user:u1", "k", FP, limited)
    assert await rows(idempotency_engine) == []


async def test_keys_expire_and_are_pruned(
    idempotency_store: Idempotency, idempotency_engine: AsyncEngine, idempotency_clock: Clock
) -> None:
    action = Counted()
    for i in range(7):
        idempotency_clock.now = T0 + i * 1000
        await idempotency_store.run("user:u1", f"k{i}", FP, action)
    assert await idempotency_store.prune(T0 + DAY_MS - 1) == 0
    assert await idempotency_store.prune(T0 + DAY_MS + 2000, batch=2) == 3  # k0, k1, k2
    assert sorted(r.key for r in await rows(idempotency_engine)) == ["k3", "k4", "k5", "k6"]

    # Kept a full day; after that the key is free, pruned or not, even for a different request.
    idempotency_clock.now = T0 + 3000 + DAY_MS - 1
    assert (await idempotency_store.run("user:u1", "k3", FP, action))[1] is True
    idempotency_clock.now = T0 + 3000 + DAY_MS
    _, replayed = await idempotency_store.run("user:u1", "k3", OTHER_FP, action)
    assert replayed is False and action.calls == 8
    idempotency_clock.now += 10 * DAY_MS
    assert await idempotency_store.prune() == 4


async def test_a_request_cut_off_while_acting_holds_its_key(
    idempotency_engine: AsyncEngine, idempotency_clock: Clock
) -> None:
    """Whether a cancelled action committed is unknown: the key stays taken until the lock times out."""
    store = Idempotency(idempotency_engine, lock_timeout_s=60, clock=idempotency_clock)
    started = asyncio.Event()

    async def hangs() -> StoredResponse:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(store.run("user:u1", "k", FP, hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [row] = await rows(idempotency_engine)
    assert row.state == "in_progress"

    action = Counted()
    idempotency_clock.now += 59_999
    with pytest.raises(KeyInProgress):
        await store.run("user:u1", "k", FP, action)
    with pytest.raises(KeyReused):
        await store.run("user:u1", "k", OTHER_FP, action)
    idempotency_clock.now += 1
    answer, replayed = await store.run("user:u1", "k", FP, action)
    assert (answer.status, replayed, action.calls) == (201, False, 1)
    assert await store.run("user:u1", "k", FP, action) == (answer, True)

    # Without a lock timeout, such a key waits for its expiry.
    strict = Idempotency(idempotency_engine, clock=idempotency_clock)
    task = asyncio.create_task(strict.run("user:u1", "k2", FP, hangs))
    started.clear()
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    idempotency_clock.now += DAY_MS - 1
    with pytest.raises(KeyInProgress):
        await strict.run("user:u1", "k2", FP, action)
    idempotency_clock.now += 1
    assert (await strict.run("user:u1", "k2", FP, action))[1] is False


async def test_keys_are_required_and_checked(idempotency_store: Idempotency) -> None:
    action = Counted()
    with pytest.raises(InvalidInput, match="Idempotency-Key header is required"):
        await idempotency_store.run("user:u1", None, FP, action)
    answer, replayed = await idempotency_store.run("user:u1", None, FP, action, require_key=False)
    assert (answer.status, replayed, action.calls) == (201, False, 1)
    for bad in ("", "x" * 256, "caf\u00e9", "tab\there", "nul\x00"):
        with pytest.raises(InvalidInput, match="1 to 255 printable ASCII"):
            await idempotency_store.run("user:u1", bad, FP, action)
    assert check_key("x" * 255) and check_key("order 7f3a-~!")
    assert action.calls == 1


def test_keys_are_kept_at_least_a_day(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(ValueError, match="at least 86400"):
        Idempotency(engine, ttl_s=3600)
    assert Idempotency(engine, ttl_s=7 * 86400).ttl_ms == 7 * DAY_MS


def test_derived_ids_are_stable_per_scope_and_key() -> None:
    assert derived_id("user:u1", "k", "debit") == derived_id("user:u1", "k", "debit")
    ids = {derived_id("user:u1", "k", "debit"), derived_id("user:u2", "k", "debit"), derived_id("user:u1", "k")}
    assert len(ids) == 3


# The FastAPI helper, on an app with the hub's problem documents.


class Payment(BaseModel):
    amount: int
    currency: str = "CNY"


def payments_app(store: Idempotency, calls: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.post("/merchants/{merchant_id}/payments", status_code=201)
    async def pay(merchant_id: str, payment: Payment, request: Request) -> Response:
        async def act() -> StoredResponse:
            if payment.amount > 10_000:
                raise Conflict("insufficient funds")
            calls.append(payment.model_dump())
            return StoredResponse.of_json({"id": f"pay_{len(calls)}", "amount": payment.amount}, 201)

        return await idempotent(request, store, f"merchant:{merchant_id}", act)

    return app


async def test_the_route_helper(idempotency_store: Idempotency, idempotency_engine: AsyncEngine) -> None:
    calls: list[dict[str, Any]] = []
    app = payments_app(idempotency_store, calls)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        url = "/merchants/m1/payments"
        first = await client.post(url, json={"amount": 500, "currency": "CNY"}, headers={HEADER: "a"})
        assert first.status_code == 201 and REPLAYED_HEADER not in first.headers
        # The same request, other key order and spacing: the first answer again.
        body = b'{ "currency":"CNY",  "amount":500 }'
        again = await client.post(url, content=body, headers={HEADER: "a", "Content-Type": "application/json"})
        assert again.status_code == 201 and again.content == first.content
        assert again.headers[REPLAYED_HEADER] == "true"
        assert len(calls) == 1

        different = await client.post(url, json={"amount": 501}, headers={HEADER: "a"})
        assert different.status_code == 409
        assert different.headers["content-type"] == problems.MEDIA_TYPE
        assert different.json()["detail"] == "this Idempotency-Key was used for a different request"

        missing = await client.post(url, json={"amount": 500})
        assert missing.status_code == 422 and missing.json()["detail"] == "Idempotency-Key header is required"

        # The same key on another merchant is another scope; a client error is stored like an answer.
        poor = await client.post("/merchants/m2/payments", json={"amount": 20_000}, headers={HEADER: "a"})
        assert poor.status_code == 409 and poor.json()["detail"] == "insufficient funds"
        poor_again = await client.post("/merchants/m2/payments", json={"amount": 20_000}, headers={HEADER: "a"})
        assert (poor_again.status_code, poor_again.content) == (409, poor.content)
        assert poor_again.headers[REPLAYED_HEADER] == "true"

    scopes = sorted(r.scope for r in await rows(idempotency_engine))
    assert scopes == [
        "merchant:m1 POST /merchants/{merchant_id}/payments",
        "merchant:m2 POST /merchants/{merchant_id}/payments",
    ]


async def test_the_route_helper_answers_busy_with_retry_after(idempotency_engine: AsyncEngine) -> None:
    store = Idempotency(idempotency_engine)
    gate = asyncio.Event()
    app = FastAPI()
    problems.install(app)

    @app.post("/pay")
    async def pay(request: Request) -> Response:
        async def act() -> StoredResponse:
            await gate.wait()
            return StoredResponse.of_json({"ok": True})

        return await idempotent(request, store, "user:u1", act)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        slow = asyncio.create_task(client.post("/pay", json={"a": 1}, headers={HEADER: "k"}))
        for _ in range(100):
            if await rows(idempotency_engine):
                break
            await asyncio.sleep(0.01)
        busy = await client.post("/pay", json={"a": 1}, headers={HEADER: "k"})
        assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
        assert "still being processed; retry later" in busy.json()["detail"]
        gate.set()
        assert (await slow).status_code == 200


# The fingerprint: key order and whitespace do not matter, values (and their types) do.

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def reordered(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: reordered(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [reordered(v, rnd) for v in value]
    return value


@given(JSON_VALUES, st.randoms(use_true_random=False), st.sampled_from([None, 0, 2, "\t"]), st.booleans())
def test_fingerprint_ignores_key_order_and_whitespace(
    value: Any, rnd: random.Random, indent: Any, ascii_: bool
) -> None:
    text = json.dumps(reordered(value, rnd), indent=indent, ensure_ascii=ascii_)
    expected = fingerprint("POST", "/pay", value)
    assert fingerprint("POST", "/pay", text.encode()) == expected
    assert fingerprint("post", "/pay", b"  " + text.encode() + b"\n") == expected


def mutations(value: Any) -> list[Any]:
    """Values that differ from ``value`` in one place."""
    out: list[Any] = [[value], {"x": value}]
    if isinstance(value, bool):
        out += [not value, int(value)]
    elif isinstance(value, int):
        out += [value + 1, float(value) if abs(value) < 2**53 else str(value), str(value)]
    elif isinstance(value, float):
        out += [value + 1 if abs(value) < 2**52 else value / 2, str(value)]
    elif isinstance(value, str):
        out += [value + "x", value.upper() if value.upper() != value else value + " "]
    elif value is None:
        out += [0, "", False]
    elif isinstance(value, list):
        out += [[*value, None], value[:-1] if value else [0]]
        if value:
            out += [[m, *value[1:]] for m in mutations(value[0])[:3]]
    elif isinstance(value, dict):
        out.append({**value, "extra": 1})
        for k in list(value)[:1]:
            out.append({kk: vv for kk, vv in value.items() if kk != k})
            out.append({**{kk: vv for kk, vv in value.items() if kk != k}, k + "_": value[k]})
            out += [{**value, k: m} for m in mutations(value[k])[:3]]
    return out


@given(JSON_VALUES)
def test_fingerprint_sees_every_change_of_value(value: Any) -> None:
    expected = fingerprint("POST", "/pay", value)
    for changed in mutations(value):
        assert fingerprint("POST", "/pay", changed) != expected, changed
    assert fingerprint("PUT", "/pay", value) != expected
    assert fingerprint("POST", "/pay/", value) != expected


def test_fingerprint_of_odd_bodies() -> None:
    assert fingerprint("POST", "/p", b"") == fingerprint("POST", "/p", b" \n") == fingerprint("POST", "/p", None)
    assert fingerprint("POST", "/p", b"not json") != fingerprint("POST", "/p", b"not json!")
    assert fingerprint("POST", "/p", b"NaN") != fingerprint("POST", "/p", b"Infinity")
    assert fingerprint("POST", "/p", {"amount": 1}) != fingerprint("POST", "/p", {"amount": 1.0})
    assert fingerprint("POST", "/p", {"amount": 1}) != fingerprint("POST", "/p", {"amount": True})
    with pytest.raises(InvalidInput):
        fingerprint("POST", "/p", {"amount": float("nan")})
