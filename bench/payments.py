"""Counter payments through the API: a cashier scans a watch's pay code and the payment is authorised at once.

Sets up through the real API a person (sign-up, password grant) with a home, N smartwatches bound into it
(sticker binding codes), payment enabled on each (limits high enough and ``confirm_above`` above every amount,
so every payment is authorised at once), each watch's payment token fetched by the watch itself (``POST
/device/v1/payment-token`` with its HTTP Basic credentials), the wallet topped up, and a merchant with its API
key. Then, open loop at a fixed rate (a request starts every 1/rate s whether or not earlier ones have answered;
latency counts from when each request was due), ``POST /api/v1/merchant/micropay {"auth_code", "amount",
"out_trade_no"}`` with the merchant's key and a fresh ``Idempotency-Key``; every answer must be ``SUCCESS``. One
wallet pays for all the watches, so its velocity limit is lifted for the hub under test (and a watch may pay as
often as it can show a code). What is not sent within twice --seconds plus 20 s of the start is not sent at all
("not sent"; requests sent are always awaited, so every payment the hub made is counted).

Pay codes are computed before the run (``PayCodeGenerator``: 8 per watch and minute, 4 counters of the current
and of the next time step), so the load generator does no HMAC work while it measures; they are generated right
before the run, which must end within their minute of validity.

The reference in the same run is the floor: the same POST without a key at the same rate (routing, body
parsing, the 401 problem document, the HTTP stack). Afterwards ``tosplus payments verify`` checks the ledger in
the hub's database, and the script checks that the wallet holds the top-ups less every SUCCESS amount (through
the API), that the merchant holds what it was paid less the platform's fees and the fee account those fees (in
the ledger's tables), and that the orders in the database are the SUCCESS answers; it exits 1 if anything is off.

    python bench/payments.py
    python bench/payments.py --broker mosquitto --db postgresql
    python bench/payments.py --rate 500
    python bench/payments.py --profile profiles/   # py-spy (pip install py-spy) on the hub, a raw file per run
    python bench/payments.py --rate 50 --trace-db   # every database transaction of the hub, timed by who opens it

CPU columns say how busy the hub, this load generator, the hub's own PostgreSQL backends and the rest of the
machine were during each run: on a shared 2-core machine a busy "rest" explains a bad p99. With PostgreSQL the
script also counts the database's commits, rollbacks and new connections per payment (``pg_stat_database``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import RunningHub, hub_process, machine, mosquitto, postgres_database
from bench.loadgen import (
    Connection,
    cpu_seconds,
    hub_pid,
    machine_cpu_seconds,
    open_connections,
    percentile,
    py_spy,
    warn_if_busy,
)
from tosplus.sdk.paycode import BORROW_STEPS, MAX_COUNTER, STEP_S, PayCodeGenerator, PayCodesExhaustedError

console = Console(width=max(Console().width, 160))  # the results table needs the room, also in a log file

PRODUCT = "smartwatch"
PASSWORD = "bench-password-1"
CARD = "4242424242424242"
MAX_TOP_UP = 5_000_000  # fen: the most one top-up may bring
FEE_BPS = 60
AMOUNTS = (1_00, 50_00)  # fen: every payment is between 1 and 50 CNY
LIMITS = {"per_payment_limit": 1_000_000, "daily_limit": 100_000_000, "confirm_above": 1_000_000}
PATH = "/api/v1/merchant/micropay"
# One wallet pays for every watch here, far faster than a person does: its velocity limit (30 a minute by default)
# is lifted; each watch may pay as often as it can show a code (8 a minute; the hub's default is 6).
HUB_ENV = {"TOSPLUS_PAYMENTS_PER_WALLET_PER_MINUTE": "10000000", "TOSPLUS_PAYMENTS_PER_DEVICE_PER_MINUTE": "8"}
WARM_UP = 200  # payments before the measured run, one connection at a time (not recorded)


# -- setting up through the API -----------------------------------------------------------------------------------


@dataclass
class Shop:
    person_token: str
    merchant: dict[str, Any]
    codes: list[PayCodeGenerator]  # one per watch
    topped_up: int = 0


async def _post(
    http: httpx.AsyncClient, url: str, expect: int, *, done_if_retried: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """POST and check the status. A request whose connection broke is sent again (a keep-alive connection the hub
    closed just as it was reused); ``done_if_retried`` is the status a repeat answers when the first one had
    acted (a binding code already used, payment already enabled)."""
    for attempt in range(3):
        try:
            response = await http.post(url, **kwargs)
        except httpx.TransportError:
            if attempt == 2:
                raise
            continue
        if attempt and response.status_code == done_if_retried:
            return {}
        if response.status_code != expect:
            raise RuntimeError(f"POST {url}: {response.status_code} {response.text}")
        return dict(response.json())
    raise AssertionError("unreachable")


async def set_up(hub: RunningHub, watches: int, width: int, top_up: int) -> Shop:
    """The person, the home, ``watches`` bound watches with payment tokens, the top-ups and the merchant."""
    limits = httpx.Limits(max_connections=width, max_keepalive_connections=width)
    operator = {"Authorization": f"Bearer {hub.token}"}
    async with httpx.AsyncClient(base_url=hub.api, timeout=120, limits=limits) as http:
        email = f"bench-{os.urandom(4).hex()}@example.com"
        await _post(http, "/api/v1/auth/signup", 201, json={"email": email, "password": PASSWORD, "name": "Bench"})
        grant = {"grant_type": "password", "username": email, "password": PASSWORD}
        token = (await _post(http, "/api/v1/auth/token", 200, data=grant))["access_token"]
        person = {"Authorization": f"Bearer {token}"}
        home = {"name": "Bench home", "rooms": ["Hall"]}
        home_id = (await _post(http, "/api/v1/homes", 201, json=home, headers=person))["id"]
        bulk = {"product_id": PRODUCT, "count": watches}
        devices = (await _post(http, "/api/v1/devices/bulk", 201, json=bulk, headers=operator))["devices"]
        generators: list[PayCodeGenerator | None] = [None] * len(devices)
        gate = asyncio.Semaphore(width)
        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{watches:,} watches: bind, enable payment, fetch the token", total=watches)

            async def one(n: int, device: dict[str, str]) -> None:
                async with gate:
                    path = f"/api/v1/devices/{device['id']}"
                    code = await _post(http, f"{path}/binding-codes", 201, json={"valid_days": 1}, headers=operator)
                    bind = {"code": code["code"]}
                    await _post(
                        http,
                        f"/api/v1/homes/{home_id}/devices/bind",
                        201,
                        done_if_retried=404,
                        json=bind,
                        headers=person,
                    )
                    await _post(http, f"{path}/payment-token", 201, done_if_retried=409, json=LIMITS, headers=person)
                    creds = await _post(http, "/device/v1/payment-token", 200, auth=(device["id"], device["secret"]))
                    generators[n] = PayCodeGenerator(creds["token_number"], base64.b64decode(creds["key"]))
                progress.advance(task)

            await asyncio.gather(*(one(n, d) for n, d in enumerate(devices)))
            topped_up = 0
            money = progress.add_task(f"top-ups ({top_up / 100:,.2f} CNY)", total=-(-top_up // MAX_TOP_UP))
            while topped_up < top_up:
                amount = min(MAX_TOP_UP, top_up - topped_up)
                headers = {**person, "Idempotency-Key": f"bench-top-up-{os.urandom(8).hex()}"}  # a retry is harmless
                body = {"amount": amount, "card_number": CARD}
                await _post(http, "/api/v1/wallet/top-ups", 201, json=body, headers=headers)
                topped_up += amount
                progress.advance(money)
        merchant_body = {"name": "Bench Coffee", "fee_bps": FEE_BPS}
        merchant = await _post(http, "/api/v1/merchants", 201, json=merchant_body, headers=operator)
    return Shop(token, merchant, [g for g in generators if g is not None], topped_up)


def pay_codes(generators: list[PayCodeGenerator], needed: int) -> tuple[list[str], float]:
    """Every code the watches may show now, watch after watch in turn; and until when all of them are valid.

    A watch shows the 4 counters of the current step, then borrows the next step's 4; the hub accepts a step
    within one of its own, so the oldest code stays valid until the end of the step after the current one.
    """
    now = time.time()
    per_watch: list[list[str]] = []
    for generator in generators:
        generator.position = (0, 0)
        codes = [generator.current(now)]
        with contextlib.suppress(PayCodesExhaustedError):
            while True:
                codes.append(generator.next_after_use(now))
        per_watch.append(codes)
    ordered = [c for round_ in itertools.zip_longest(*per_watch) for c in round_ if c is not None]
    if len(ordered) < needed:
        raise RuntimeError(f"{needed:,} payments need as many pay codes; the watches show {len(ordered):,}")
    valid_until = (int(now // STEP_S) + 2) * STEP_S
    return ordered[:needed], valid_until


# -- requests and measuring ---------------------------------------------------------------------------------------


def micropay_request(key: str | None, code: str, amount: int, trade_no: str, idempotency_key: str) -> bytes:
    body = b'{"auth_code":"%s","amount":%d,"out_trade_no":"%s"}' % (code.encode(), amount, trade_no.encode())
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Idempotency-Key: {idempotency_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Result:
    label: str
    offered: float
    requests: int
    latencies: list[float] = field(default_factory=list)
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    succeeded: list[int] = field(default_factory=list)  # indexes of the requests answered as they should be
    elapsed: float = 0.0
    hub_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0
    not_sent: int = 0  # the generator gave up on them: the hub was far behind

    @property
    def failures(self) -> int:
        """Requests sent and not answered as they should be."""
        return self.requests - self.not_sent - len(self.succeeded)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to ``database`` (their process titles name it)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                title = cmdline.read()
            if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                found[int(entry)] = cpu_seconds(int(entry))
    return found


class Bench:
    def __init__(self, port: int, width: int, hub: int, progress: Progress, database: str, profile: Path | None):
        self.port, self.width = port, width
        self.hub = hub
        self.progress = progress
        self.database = database  # PostgreSQL's database name, or ""
        self.profile = profile

    @contextlib.contextmanager
    def _measure(self, result: Result) -> Iterator[None]:
        spy = None
        if self.profile is not None:
            name = "".join(c if c.isalnum() else "-" for c in f"{result.label}-{result.offered:g}".lower())
            spy = py_spy(self.hub, self.profile / f"{name}.raw")
            time.sleep(0.5)  # attached before the first request
        db0 = postgres_backends(self.database) if self.database else {}
        hub0, client0, machine0 = cpu_seconds(self.hub), time.process_time(), machine_cpu_seconds()
        start = time.perf_counter()
        yield
        result.elapsed = time.perf_counter() - start
        result.hub_cpu_s = cpu_seconds(self.hub) - hub0
        result.client_cpu_s = time.process_time() - client0
        result.machine_cpu_s = machine_cpu_seconds() - machine0
        if self.database:
            result.db_cpu_s = sum(cpu - db0.get(pid, 0.0) for pid, cpu in postgres_backends(self.database).items())
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file
            spy.wait(60)

    async def open(
        self,
        label: str,
        requests: list[bytes],
        ok: Callable[[int, bytes], bool],
        rate: float,
        seconds: float,
        send_until: float = float("inf"),
    ) -> Result:
        """A request every 1/rate s, whatever the answers; latency from when each was due.

        Every connection is a worker that takes the next due request; when all are busy, the next request waits
        for one to be free, and that wait is counted (a queue in the generator is not hidden). The connections
        are opened for the run (the hub closes keep-alive connections idle for 5 s).
        """
        connections = await open_connections(self.port, self.width)
        total = min(len(requests), int(rate * seconds))
        result = Result(label, rate, total)
        counter = itertools.count()
        task = self.progress.add_task(f"{label}, {rate:g}/s", total=total)
        start = 0.0

        async def worker(connection: Connection) -> None:
            latencies, answers, succeeded = result.latencies, result.answers, result.succeeded
            while (i := next(counter)) < total:
                due = start + i / rate
                if time.perf_counter() > stop_sending:
                    return  # far behind: the rest is never sent
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    status, body = await connection.request(requests[i])
                except (OSError, ValueError, RuntimeError) as exc:
                    answers[type(exc).__name__] += 1
                    return  # this connection is gone; the others take the rest
                if ok(status, body):
                    latencies.append((time.perf_counter() - due) * 1000)
                    succeeded.append(i)
                    answers[str(status)] += 1
                else:
                    answers[f"{status} {body[:80]!r}" if status != 401 else str(status)] += 1
                if i % 100 == 0:
                    self.progress.update(task, completed=i)

        with self._measure(result):
            start = time.perf_counter() + 0.01
            stop_sending = start + min(2 * seconds + 20, send_until - time.time())
            # Requests sent are waited for (a payment the hub made must be counted, or the money check is off).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(worker(c) for c in connections)), 2 * seconds + 140)
        for connection in connections:
            connection.close()
        result.not_sent = total - result.answers.total()
        result.answers["not sent (the hub was too far behind)"] += result.not_sent
        result.answers = +result.answers
        self.progress.update(task, completed=total)
        return result


def success(status: int, body: bytes) -> bool:
    return status == 200 and b'"state":"SUCCESS"' in body


def unauthorised(status: int, _body: bytes) -> bool:
    return status == 401


# -- tracing the hub's database work (--trace-db) ------------------------------------------------------------------

# Imported by the hub's interpreter at start (a sitecustomize module on its PYTHONPATH): every ``engine.begin()``
# (a transaction that commits) and ``engine.connect()`` (reads, rolled back) is timed and counted by the tosplus
# function that opened it; the counts are written to a JSON file twice a second.
DB_TRACE = """
import json, os, sys, threading, time

from sqlalchemy.ext.asyncio import engine as _engine

_out = os.environ["TOSPLUS_BENCH_DB_TRACE"]
_stats = {}


def _site(frame):
    while frame is not None:
        name = frame.f_code.co_filename
        if "tosplus" in name and "storage/engine" not in name:
            return name.rsplit("/", 1)[-1] + ":" + frame.f_code.co_name
        frame = frame.f_back
    return "?"


class _Timed:
    def __init__(self, context, key):
        self.context, self.key = context, key

    async def __aenter__(self):
        self.t0 = time.perf_counter()
        value = await self.context.__aenter__()
        self.t1 = time.perf_counter()
        return value

    async def __aexit__(self, *exc):
        t2 = time.perf_counter()
        try:
            return await self.context.__aexit__(*exc)
        finally:
            t3 = time.perf_counter()
            s = _stats.setdefault(self.key, [0, 0.0, 0.0, 0.0])
            s[0] += 1
            s[1] += self.t1 - self.t0  # waiting for a connection, and BEGIN
            s[2] += t2 - self.t1  # the statements
            s[3] += t3 - t2  # COMMIT (or the rollback that ends a read) and giving the connection back


def _connect(self):
    caller = sys._getframe(1)
    if "sqlalchemy" in caller.f_code.co_filename:  # begin() itself connects
        return _plain_connect(self)
    return _Timed(_plain_connect(self), "read " + _site(caller))


_plain_begin, _plain_connect = _engine.AsyncEngine.begin, _engine.AsyncEngine.connect
_engine.AsyncEngine.begin = lambda self: _Timed(_plain_begin(self), "commit " + _site(sys._getframe(1)))
_engine.AsyncEngine.connect = _connect


def _dump():
    while True:
        time.sleep(0.5)
        try:
            snapshot = json.dumps({k: list(v) for k, v in list(_stats.items())})
        except RuntimeError:  # changed while copied
            continue
        with open(_out + ".tmp", "w") as f:
            f.write(snapshot)
        os.replace(_out + ".tmp", _out)


threading.Thread(target=_dump, daemon=True).start()
"""


def db_trace_env(workdir: Path) -> dict[str, str]:
    folder = workdir / "db-trace"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(DB_TRACE)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TOSPLUS_BENCH_DB_TRACE": str(workdir / "db-trace.json")}


async def db_trace(path: str) -> dict[str, list[float]]:
    await asyncio.sleep(0.7)  # the hub writes it twice a second
    with contextlib.suppress(FileNotFoundError):
        return dict(orjson.loads(Path(path).read_bytes()))
    return {}


def db_trace_table(before: dict[str, list[float]], after: dict[str, list[float]], payments: int) -> Table:
    out = Table(
        title=f"The hub's database transactions during the micropay run, per payment ({payments:,} payments)",
        caption="ms are wall-clock means per transaction: connection = waiting for the pool's connection and "
        "BEGIN; statements = the body; end = COMMIT (or a read's rollback) and giving the connection back",
    )
    for name in ("transaction (opened by)", "per payment", "connection ms", "statements ms", "end ms", "total ms"):
        out.add_column(name, justify="left" if name.startswith("transaction") else "right")
    rows = []
    for key, (count, wait, body, end) in after.items():
        b = before.get(key, [0, 0.0, 0.0, 0.0])
        n = int(count - b[0])
        if n > 0:
            rows.append((key, n, (wait - b[1]) / n, (body - b[2]) / n, (end - b[3]) / n))
    rows.sort(key=lambda r: -r[1] * (r[2] + r[3] + r[4]))
    for key, n, wait, body, end in rows:
        out.add_row(
            key,
            f"{n / payments:.2f}",
            f"{1000 * wait:.2f}",
            f"{1000 * body:.2f}",
            f"{1000 * end:.2f}",
            f"{1000 * (wait + body + end):.2f}",
        )
    commits = sum(r[1] for r in rows if r[0].startswith("commit"))
    reads = sum(r[1] for r in rows if r[0].startswith("read"))
    out.add_row("[bold]all[/bold]", f"{commits / payments:.2f} commits, {reads / payments:.2f} reads", "", "", "", "")
    return out


# -- checking the money afterwards --------------------------------------------------------------------------------


async def postgres_transactions(url: str, database: str, settle: bool) -> tuple[int, int, int]:
    """(commits, rollbacks, connections opened) of ``database`` so far; with ``settle``, once the backends have
    reported them. Backends report their counts at most once a second while busy and within 10 s once idle.
    """
    import asyncpg

    conn = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")  # not a transaction of the counted database
    try:
        query = "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database WHERE datname = $1"
        last = None
        for _ in range(30 if settle else 1):
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow(query, database)
            now = (int(row["xact_commit"]), int(row["xact_rollback"]), int(row["sessions"]))
            if now == last:
                break
            last = now
            if settle:
                await asyncio.sleep(1.0)
        assert last is not None
        return last
    finally:
        await conn.close()


async def money_in_database(url: str, merchant_id: str) -> dict[str, int]:
    """Balances of the ledger's accounts and the orders' totals, read from the hub's database."""
    import sqlalchemy as sa

    from tosplus.config import normalise_database_url
    from tosplus.services.payments import tables_payments as tp
    from tosplus.services.payments.tables_ledger import ledger_accounts as accounts
    from tosplus.storage.engine import create_engine

    engine = create_engine(normalise_database_url(url))
    try:
        async with engine.connect() as conn:
            balances = {
                row.id: int(row.credits_posted) - int(row.debits_posted)
                for row in await conn.execute(
                    sa.select(accounts.c.id, accounts.c.credits_posted, accounts.c.debits_posted).where(
                        accounts.c.id.in_([f"merchant:{merchant_id}", "fee:platform", "funding:cards"])
                    )
                )
            }
            pending = (
                await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(accounts.c.debits_pending), 0)))
            ).scalar()
            orders = (
                await conn.execute(
                    sa.select(
                        tp.orders.c.state,
                        sa.func.count(),
                        sa.func.coalesce(sa.func.sum(tp.orders.c.amount), 0),
                        sa.func.coalesce(sa.func.sum(tp.orders.c.fee), 0),
                    ).group_by(tp.orders.c.state)
                )
            ).all()
    finally:
        await engine.dispose()
    found = {
        "merchant": balances.get(f"merchant:{merchant_id}", 0),
        "fees": balances.get("fee:platform", 0),
        "funding": balances.get("funding:cards", 0),
        "pending": int(pending or 0),
    }
    for state, count, amount, fee in orders:
        found[f"orders {state}"] = int(count)
        found[f"amount {state}"] = int(amount)
        found[f"fee {state}"] = int(fee)
    return found


def verify_ledger(data_dir: str, database_url: str) -> tuple[bool, str]:
    """``tosplus payments verify`` against the hub's database, as an operator would run it."""
    env = {k: v for k, v in os.environ.items() if k not in ("TOSPLUS_DATABASE_URL", "TOSPLUS_DATA_DIR")}
    env["TOSPLUS_DATA_DIR"] = data_dir
    if database_url:
        env["TOSPLUS_DATABASE_URL"] = database_url
    done = subprocess.run(
        [sys.executable, "-m", "tosplus", "payments", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


# -- the report ---------------------------------------------------------------------------------------------------


def table(results: list[Result]) -> Table:
    out = Table(
        title="Counter payments (micropay, open loop)",
        caption="CPU columns in % of one core; db = the hub's PostgreSQL backends; "
        "rest = broker, kernel and any other process",
    )
    for name in (
        "request",
        "offered",
        "done",
        "answered/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "not sent",
        "hub CPU",
        "hub µs/req",
        "client CPU",
        "db CPU",
        "rest CPU",
    ):
        out.add_column(name, justify="left" if name == "request" else "right")
    for r in results:
        done = len(r.latencies)
        lat = r.latencies or [float("nan")]
        rest = r.machine_cpu_s - r.hub_cpu_s - r.client_cpu_s - r.db_cpu_s
        out.add_row(
            r.label,
            f"{r.offered:g}/s",
            f"{done:,}",
            f"{r.rate:,.0f}",
            f"{statistics.median(lat):.1f}",
            f"[bold]{percentile(lat, 0.99):.1f}[/bold]",
            f"{max(lat):.1f}",
            f"[red]{r.failures}[/red]" if r.failures else "0",
            f"{r.not_sent:,}",
            f"{100 * r.hub_cpu_s / r.elapsed:.0f} %",
            f"{1e6 * r.hub_cpu_s / done:.0f}" if done else "-",
            f"{100 * r.client_cpu_s / r.elapsed:.0f} %",
            f"{100 * r.db_cpu_s / r.elapsed:.0f} %" if r.db_cpu_s else "-",
            f"{100 * max(0.0, rest) / r.elapsed:.0f} %",
        )
    return out


# -- main ---------------------------------------------------------------------------------------------------------


def main(
    rate: float = typer.Option(1000.0, help="payments per second offered"),
    seconds: float = typer.Option(10.0, help="length of the measured run (the pay codes last about a minute)"),
    watches: int = typer.Option(1500, help="smartwatches paying (each shows 8 pay codes a minute)"),
    connections: int = typer.Option(64, help="keep-alive connections the load generator may use"),
    setup_connections: int = typer.Option(32, help="concurrent requests while setting up"),
    broker: str = typer.Option("embedded", help="embedded or mosquitto"),
    db: str = typer.Option("sqlite", help="sqlite or postgresql"),
    seed: int = typer.Option(7, help="seed of the payments' amounts"),
    profile: Path | None = typer.Option(
        None, help="a folder: record the hub with py-spy during each measured run (slows the hub; not for results)"
    ),
    trace_db: bool = typer.Option(
        False, help="time every database transaction of the hub by the function that opened it (not for results)"
    ),
) -> None:
    if seconds > 40:
        raise typer.BadParameter("pay codes are valid for about a minute after they are shown: --seconds ≤ 40")
    total = int(rate * seconds)
    if watches * MAX_COUNTER * (1 + BORROW_STEPS) < WARM_UP + total:
        raise typer.BadParameter(
            f"{WARM_UP + total:,} payments need as many pay codes, and {watches:,} watches show "
            f"{watches * MAX_COUNTER * (1 + BORROW_STEPS):,} a minute: add --watches, or lower --rate or --seconds"
        )
    rng = random.Random(seed)
    amounts = [rng.randint(*AMOUNTS) for _ in range(WARM_UP + total)]
    console.print(
        f"[bold]Counter payments[/bold]: {rate:g}/s for {seconds:g}s from {watches:,} {PRODUCT}es to one merchant, "
        f"broker={broker}, db={db}; machine: {machine()}"
    )
    warn_if_busy(console)
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tosplus-bench-pay-")))
        data_dir = str(workdir / "data")
        database_url = stack.enter_context(postgres_database()) if db == "postgresql" else ""
        database = database_url.rsplit("/", 1)[1] if database_url else ""
        broker_url = f"mqtt://127.0.0.1:{stack.enter_context(mosquitto(workdir))}" if broker == "mosquitto" else ""
        hub_env = {**HUB_ENV, "TOSPLUS_DATA_DIR": data_dir, **(db_trace_env(workdir) if trace_db else {})}
        hub = stack.enter_context(hub_process(broker_url=broker_url, database_url=database_url, extra_env=hub_env))
        started = time.perf_counter()
        shop = asyncio.run(set_up(hub, watches, setup_connections, sum(amounts) + 100_00))
        console.print(
            f"set up in {time.perf_counter() - started:.1f} s: {len(shop.codes):,} watches with payment tokens, "
            f"{shop.topped_up / 100:,.2f} CNY topped up, merchant {shop.merchant['id']}"
        )
        key = shop.merchant["api_key"]
        run_id = os.urandom(3).hex()
        floor = [micropay_request(None, "280000000000000000", 1_00, f"F-{n}", f"floor-{n}") for n in range(1000)]
        port = int(hub.api.rsplit(":", 1)[1])
        pid = hub_pid(hub.process.pid)
        transactions: dict[str, tuple[int, int, int]] = {}
        traces: dict[str, dict[str, list[float]]] = {}

        async def run() -> None:
            pool = await open_connections(port, 8)
            columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                bench = Bench(port, connections, pid, progress, database, profile)
                codes, valid_until = pay_codes(shop.codes, WARM_UP + total)
                payments = [
                    micropay_request(key, code, amounts[n], f"B{run_id}-{n:06d}", f"bench-{run_id}-{n:06d}")
                    for n, code in enumerate(codes)
                ]
                warm = progress.add_task("warm-up", total=WARM_UP + len(floor))
                for n in range(WARM_UP):
                    status, body = await pool[n % len(pool)].request(payments[n])
                    if not success(status, body):
                        raise RuntimeError(f"warm-up payment {n} answered {status} {body!r}")
                    progress.advance(warm)
                for raw in floor[:200]:
                    status, body = await pool[0].request(raw)
                    if status != 401:
                        raise RuntimeError(f"warm-up: the floor answered {status} {body!r}")
                    progress.advance(warm, len(floor) // 200)
                for connection in pool:
                    connection.close()
                results.append(
                    await bench.open("floor: no key (401)", floor * (1 + total // 1000), unauthorised, rate, seconds)
                )
                if database:
                    transactions["before"] = await postgres_transactions(database_url, database, settle=True)
                if trace_db:
                    traces["before"] = await db_trace(hub_env["TOSPLUS_BENCH_DB_TRACE"])
                if time.time() + seconds + 5 > valid_until:
                    raise RuntimeError("the pay codes would expire during the run (this should not happen)")
                results.append(
                    await bench.open("micropay (SUCCESS)", payments[WARM_UP:], success, rate, seconds, valid_until - 2)
                )
                if trace_db:
                    traces["after"] = await db_trace(hub_env["TOSPLUS_BENCH_DB_TRACE"])
                if database:
                    transactions["after"] = await postgres_transactions(database_url, database, settle=True)

        try:
            import uvloop
        except ImportError:
            asyncio.run(run())
        else:
            uvloop.run(run())

        # -- the money, checked three ways -----------------------------------------------------------------------
        paid = results[-1]
        paid_amount = sum(amounts[WARM_UP + i] for i in paid.succeeded) + sum(amounts[:WARM_UP])
        paid_fees = sum(a * FEE_BPS // 10_000 for a in (amounts[WARM_UP + i] for i in paid.succeeded))
        paid_fees += sum(a * FEE_BPS // 10_000 for a in amounts[:WARM_UP])
        paid_count = len(paid.succeeded) + WARM_UP
        with httpx.Client(base_url=hub.api, headers={"Authorization": f"Bearer {shop.person_token}"}) as person:
            wallet = person.get("/api/v1/wallet").json()
        ok, output = verify_ledger(data_dir, database_url)
        console.print(output)
        if not ok:
            problems.append("tosplus payments verify found the ledger inconsistent")
        url = database_url or f"sqlite+aiosqlite:///{Path(data_dir).resolve() / 'tosplus.db'}"
        stored = asyncio.run(money_in_database(url, shop.merchant["id"]))
        expected = {
            "wallet balance (API)": (wallet["balance"], shop.topped_up - paid_amount),
            "wallet available (API)": (wallet["available"], shop.topped_up - paid_amount),
            "merchant (ledger)": (stored["merchant"], paid_amount - paid_fees),
            "platform fees (ledger)": (stored["fees"], paid_fees),
            "funding:cards (ledger)": (stored["funding"], -shop.topped_up),
            "pending reservations (ledger)": (stored["pending"], 0),
            "SUCCESS orders (database)": (stored.get("orders SUCCESS", 0), paid_count),
            "SUCCESS amounts (database)": (stored.get("amount SUCCESS", 0), paid_amount),
            "SUCCESS fees (database)": (stored.get("fee SUCCESS", 0), paid_fees),
            "orders not SUCCESS (database)": (
                sum(v for k, v in stored.items() if k.startswith("orders ")) - paid_count,
                0,
            ),
        }
        checks = Table(title="Money after the run", caption="fen; expected from the top-ups and the SUCCESS answers")
        for name in ("what", "found", "expected", ""):
            checks.add_column(name, justify="left" if name == "what" else "right")
        for what, (found, want) in expected.items():
            checks.add_row(what, f"{found:,}", f"{want:,}", "[green]✓[/green]" if found == want else "[red]✗[/red]")
            if found != want:
                problems.append(f"{what}: {found:,} where {want:,} was expected")
        console.print(checks)

    console.print(table(results))
    for r in results:
        console.print(f"{r.label}: answers {dict(r.answers)}")
    p99 = percentile(paid.latencies, 0.99) if paid.latencies else float("inf")
    if "before" in transactions and "after" in transactions:
        commits = transactions["after"][0] - transactions["before"][0]
        rollbacks = transactions["after"][1] - transactions["before"][1]
        sessions = transactions["after"][2] - transactions["before"][2]
        done = max(1, len(paid.succeeded))
        console.print(
            f"PostgreSQL during the micropay run: {commits:,} commits ({commits / done:.2f} a payment), "
            f"{rollbacks:,} rollbacks ({rollbacks / done:.2f} a payment: reads, and the pool's pings); "
            f"{sessions:,} new connections"
        )
    if traces:
        console.print(db_trace_table(traces["before"], traces["after"], max(1, len(paid.succeeded))))
    met = rate >= 1000 and paid.rate >= 0.97 * rate and p99 < 50 and not paid.failures + paid.not_sent and not problems
    money = "verified" if not problems else "[red]NOT verified[/red]"
    console.print(
        f"micropay, open loop at {rate:g}/s offered: {paid.rate:,.0f}/s answered SUCCESS, p99 {p99:.1f} ms, "
        f"{paid.failures} errors, {paid.not_sent} not sent; money {money}. "
        f"Target (≥ 1,000 payments/s with p99 < 50 ms, balances verified): {'met' if met else '[bold]not met[/bold]'}."
    )
    for problem in problems:
        console.print(f"[red]✗ {problem}[/red]")
    if problems or paid.failures:  # money off, or a payment refused or lost; being too slow is not an error
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
