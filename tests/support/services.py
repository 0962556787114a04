"""Reaching the real services of a developer or CI machine.

A test that needs PostgreSQL, Mosquitto, NATS or Redis calls :func:`require` first. Where the service is not
reachable the test is skipped with the reason, unless ``TOSPLUS_REQUIRE_SERVICES=1`` (set by .ci/run), where
it fails instead: CI must never pass by skipping the real parts.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

SERVICES = {
    "postgresql": ("127.0.0.1", 5432),
    "mosquitto": ("127.0.0.1", 1883),
    "nats": ("127.0.0.1", 4222),
    "redis": ("127.0.0.1", 6379),
}


def services_required() -> bool:
    return os.environ.get("TOSPLUS_REQUIRE_SERVICES", "") not in ("", "0", "false")


def unavailable(reason: str) -> None:
    """Skip (or, when services are required, fail) the calling test."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def require(name: str) -> tuple[str, int]:
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as exc:
        unavailable(f"{name} is not reachable on {host}:{port} ({exc})")
    return host, port


def require_program(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        unavailable(f"program {name} is not installed")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
