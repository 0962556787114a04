"""A private Mosquitto for tests: own port, own temporary directory, optionally the dynamic-security plugin.

Usage::

    with running_mosquitto(tmp_path) as broker:
        ...  # broker.host, broker.port, broker.admin_user, broker.admin_password

The broker listens on 127.0.0.1 only, refuses anonymous clients and keeps nothing on disk except the
dynamic-security JSON in ``tmp_path``. Where Mosquitto (or its plugin) is missing the calling test is skipped
(or fails under ``TOSPLUS_REQUIRE_SERVICES=1``), see :mod:`tests.support.services`.
"""

from __future__ import annotations

import base64
import getpass
import glob
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.services import free_port, require_program, unavailable

PLUGIN_NAME = "mosquitto_dynamic_security.so"
PLUGIN_GLOBS = (
    f"/usr/lib/*/{PLUGIN_NAME}",
    f"/usr/lib/{PLUGIN_NAME}",
    f"/usr/lib/mosquitto*/{PLUGIN_NAME}",
    f"/usr/lib/*/mosquitto*/{PLUGIN_NAME}",
    f"/usr/lib64/{PLUGIN_NAME}",
    f"/usr/lib64/mosquitto*/{PLUGIN_NAME}",
    f"/usr/local/lib/{PLUGIN_NAME}",
    f"/usr/local/lib/*/{PLUGIN_NAME}",
    f"/usr/local/lib/mosquitto*/{PLUGIN_NAME}",
    f"/opt/homebrew/lib/{PLUGIN_NAME}",
    f"/opt/homebrew/opt/mosquitto/lib/{PLUGIN_NAME}",
)
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MosquittoInstance:
    host: str
    port: int
    admin_user: str
    admin_password: str
    process: subprocess.Popen[bytes]
    dynsec_file: Path | None = None
    log_file: Path | None = None

    @property
    def url(self) -> str:
        """The hub's ``TOSPLUS_BROKER_URL`` for this broker (admin credentials)."""
        return f"mqtt://{self.admin_user}:{self.admin_password}@{self.host}:{self.port}"

    def log(self) -> str:
        if self.log_file is None or not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")


def find_dynsec_plugin() -> str | None:
    """Where the dynamic-security plugin lives (``MOSQUITTO_DYNSEC_PLUGIN`` overrides the search)."""
    override = os.environ.get("MOSQUITTO_DYNSEC_PLUGIN")
    if override:
        return override if os.path.exists(override) else None
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def _init_dynsec(path: Path, user: str, password: str) -> None:
    """Create the plugin's JSON with one admin client, the way an operator does.

    ``mosquitto_ctrl dynsec init FILE USER PASSWORD`` needs no tty when given the password. Where
    mosquitto_ctrl is missing (Debian ships it in mosquitto-clients) we write the same document ourselves.
    """
    ctrl = shutil.which("mosquitto_ctrl")
    if ctrl is None:
        path.write_text(json.dumps(_dynsec_document(user, password), indent="\t"))
        return
    result = subprocess.run(
        [ctrl, "dynsec", "init", str(path), user, password],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(f"mosquitto_ctrl dynsec init failed: {result.stdout!r} {result.stderr!r}")


def _dynsec_document(user: str, password: str) -> dict[str, Any]:
    """What ``mosquitto_ctrl dynsec init`` writes (Mosquitto 2.0): PBKDF2-SHA512 over a 12-byte salt."""
    salt = os.urandom(12)
    iterations = 101
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    everything = "$CONTROL/dynamic-security/#"
    acls = [
        ("publishClientSend", everything),
        ("publishClientReceive", everything),
        ("subscribePattern", everything),
        ("publishClientReceive", "$SYS/#"),
        ("subscribePattern", "$SYS/#"),
        ("publishClientReceive", "#"),
        ("subscribePattern", "#"),
        ("unsubscribePattern", "#"),
    ]
    return {
        "clients": [
            {
                "username": user,
                "textName": "Dynsec admin user",
                "password": base64.b64encode(digest).decode(),
                "salt": base64.b64encode(salt).decode(),
                "iterations": iterations,
                "roles": [{"rolename": "admin"}],
            }
        ],
        "roles": [
            {
                "rolename": "admin",
                "acls": [{"acltype": acltype, "topic": topic, "allow": True} for acltype, topic in acls],
            }
        ],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def _wait_accepting(host: str, port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_file.read_text(errors="replace")
            raise RuntimeError(f"mosquitto exited with {process.returncode} at start:\n{log}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not accept connections on {host}:{port} within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def running_mosquitto(tmp_path: Path, dynsec: bool = True) -> Iterator[MosquittoInstance]:
    """Start a private Mosquitto on a free 127.0.0.1 port and stop it on exit.

    With ``dynsec`` the dynamic-security plugin is loaded with a fresh JSON holding one admin client
    (``admin_user`` / ``admin_password``). Without it the broker has a password file holding the same
    account, so a client can connect but no dynamic-security commands are answered.
    """
    mosquitto = require_program("mosquitto")
    host = "127.0.0.1"
    directory = Path(tmp_path) / f"mosquitto-{secrets.token_hex(4)}"
    directory.mkdir(parents=True)
    admin_user = "admin"
    admin_password = secrets.token_urlsafe(12)
    log_file = directory / "mosquitto.log"
    lines = [
        "per_listener_settings false",
        "allow_anonymous false",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if os.geteuid() == 0:
        # As root Mosquitto would drop to the "mosquitto" user, which cannot write our temporary directory.
        lines.append(f"user {getpass.getuser()}")
    dynsec_file: Path | None = None
    if dynsec:
        plugin = find_dynsec_plugin()
        if plugin is None:
            unavailable(f"the Mosquitto dynamic-security plugin ({PLUGIN_NAME}) is not installed")
        assert plugin is not None
        dynsec_file = directory / "dynamic-security.json"
        _init_dynsec(dynsec_file, admin_user, admin_password)
        lines += [f"plugin {plugin}", f"plugin_opt_config_file {dynsec_file}"]
    else:
        passwd = shutil.which("mosquitto_passwd")
        if passwd is None:
            unavailable("program mosquitto_passwd is not installed")
        assert passwd is not None
        password_file = directory / "passwd"
        subprocess.run(
            [passwd, "-c", "-b", str(password_file), admin_user, admin_password],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=True,
        )
        lines.append(f"password_file {password_file}")

    config = directory / "mosquitto.conf"
    process, port = None, 0
    for _attempt in range(3):  # another process may take the free port before Mosquitto binds it
        port = free_port()
        config.write_text("\n".join([*lines, f"listener {port} {host}", ""]))
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [mosquitto, "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            _wait_accepting(host, port, process, log_file)
            break
        except RuntimeError:
            _stop(process)
            if "Address already in use" not in log_file.read_text(errors="replace"):
                raise
    else:
        raise RuntimeError("mosquitto found its port taken three times in a row")
    assert process is not None
    try:
        yield MosquittoInstance(
            host=host,
            port=port,
            admin_user=admin_user,
            admin_password=admin_password,
            process=process,
            dynsec_file=dynsec_file,
            log_file=log_file,
        )
    finally:
        _stop(process)
