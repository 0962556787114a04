"""Shared pieces of the benchmarks: private brokers, a hub in its own process, publishers in others."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """A private Mosquitto without authentication, tuned to queue without limit for the hub's session."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\nlog_type error\n"
    )
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class RunningHub:
    api: str
    token: str
    process: subprocess.Popen[bytes]
    mqtt_port: int

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=120)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0


@contextlib.contextmanager
def hub_process(
    *, broker_url: str = "", database_url: str = "", extra_env: dict[str, str] | None = None
) -> Iterator[RunningHub]:
    """``tosplus serve`` in its own process, on free ports, in a temporary data directory."""
    token = "bench-" + os.urandom(8).hex()
    http_port, mqtt_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="tosplus-bench-") as data:
        env = {
            **os.environ,
            "TOSPLUS_DATA_DIR": data,
            "TOSPLUS_HTTP_PORT": str(http_port),
            "TOSPLUS_MQTT_PORT": str(mqtt_port),
            "TOSPLUS_COAP_PORT": "0",
            "TOSPLUS_ADMIN_TOKEN": token,
            "TOSPLUS_DEVICE_RATE_PER_S": "100000",
            "TOSPLUS_DEVICE_RATE_BURST": "100000",
            **(extra_env or {}),
        }
        if broker_url:
            env["TOSPLUS_BROKER_URL"] = broker_url
            env.setdefault("TOSPLUS_BROKER_ACCOUNTS", "none")
        if database_url:
            env["TOSPLUS_DATABASE_URL"] = database_url
        command = [sys.executable, "-m", "tosplus", "serve", "--log-level", "warning"]
        profile = os.environ.get("TOSPLUS_BENCH_PROFILE")  # a file: record the hub with py-spy (raw format)
        if profile:
            command = ["py-spy", "record", "-f", "raw", "-r", "200", "-o", profile, "--", *command]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_port(http_port, 60)
            hub = RunningHub(f"http://127.0.0.1:{http_port}", token, process, mqtt_port)
            with hub.client() as client:
                info = client.get("/api/v1/hub").json()
            hub.mqtt_port = info["mqtt"]["port"]
            yield hub
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    import asyncio

    import asyncpg

    name = f"tosplus_bench_{os.urandom(6).hex()}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def machine() -> str:
    import platform

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"
