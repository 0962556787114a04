"""Creating simulated devices through the hub's REST API (bearer admin token), and remembering them.

The calls used::

    GET  /api/v1/hub            → {"mqtt": {"host": ..., "port": ...}, ...}
    GET  /api/v1/products       → {"items": [{"id": "light", ...}, ...]}
    POST /api/v1/devices        {"product_id", "name", "labels"} → 201 {"id", "secret", "product_id", "name", ...}
    POST /api/v1/devices/bulk   {"product_id", "count", "name_prefix"} → 201 {"devices": [{"id", "secret", "name"}]}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

BULK_LIMIT = 10_000  # the most devices one bulk request may create
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]", "*"}


class ProvisioningError(Exception):
    """The hub refused or could not answer a provisioning request."""


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    id: str
    secret: str
    product_id: str
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "secret": self.secret,
            "product_id": self.product_id,
            "name": self.name,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DeviceCredentials:
        labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
        return cls(
            id=str(doc["id"]),
            secret=str(doc["secret"]),
            product_id=str(doc["product_id"]),
            name=str(doc.get("name") or ""),
            labels=labels,
        )


def _problem(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("title") or doc)
    return str(doc)


class HubApi:
    """The few admin API calls the simulators need."""

    def __init__(
        self, api_url: str, token: str, *, client: httpx.AsyncClient | None = None, timeout_s: float = 30.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._own = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {token}"}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self._client.aclose()

    async def _call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        url = f"{self.api_url}/api/v1{path}"
        try:
            response = await self._client.request(method, url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise ProvisioningError(f"{method} {url}: the hub cannot be reached ({exc})") from exc
        if response.status_code != expect:
            raise ProvisioningError(f"{method} {url}: {response.status_code} {_problem(response)}")
        return response.json()

    async def hub_status(self) -> dict[str, Any]:
        doc = await self._call("GET", "/hub")
        return doc if isinstance(doc, dict) else {}

    async def mqtt_endpoint(self) -> tuple[str, int]:
        """Where devices connect, from ``GET /hub``; a wildcard host means the API's own host."""
        mqtt = (await self.hub_status()).get("mqtt") or {}
        host = str(mqtt.get("host") or "")
        if host in _ANY_ADDRESS:
            host = urlsplit(self.api_url).hostname or "127.0.0.1"
        return host, int(mqtt.get("port") or 1883)

    async def product_ids(self) -> set[str]:
        doc = await self._call("GET", "/products")
        return {str(item["id"]) for item in doc.get("items", []) if isinstance(item, dict) and "id" in item}

    async def create_device(
        self, product_id: str, name: str, labels: Mapping[str, str] | None = None
    ) -> DeviceCredentials:
        body = {"product_id": product_id, "name": name, "labels": dict(labels or {})}
        doc = await self._call("POST", "/devices", body, expect=201)
        return DeviceCredentials(
            id=str(doc["id"]),
            secret=str(doc["secret"]),
            product_id=str(doc.get("product_id") or product_id),
            name=str(doc.get("name") or name),
            labels=dict(labels or {}),
        )

    async def create_devices_bulk(self, product_id: str, count: int, name_prefix: str) -> list[DeviceCredentials]:
        """``count`` devices, in requests of at most :data:`BULK_LIMIT`."""
        out: list[DeviceCredentials] = []
        chunks = (count + BULK_LIMIT - 1) // BULK_LIMIT
        for chunk in range(chunks):
            size = min(BULK_LIMIT, count - chunk * BULK_LIMIT)
            prefix = name_prefix if chunks == 1 else f"{name_prefix}-{chunk + 1}"
            body = {"product_id": product_id, "count": size, "name_prefix": prefix}
            doc = await self._call("POST", "/devices/bulk", body, expect=201)
            for item in doc.get("devices", []):
                out.append(
                    DeviceCredentials(
                        id=str(item["id"]),
                        secret=str(item["secret"]),
                        product_id=product_id,
                        name=str(item.get("name") or ""),
                    )
                )
        return out


class CredentialStore:
    """Simulated devices' credentials in a JSON file (mode 0600), so a restart reuses the same devices.

    ``{"api_url": ..., "devices": {"<key>": {"id", "secret", "product_id", "name", "labels"}}}``. Entries made
    against another hub (another ``api_url``) are not reused.
    """

    def __init__(self, path: Path, api_url: str) -> None:
        self.path = path
        self.api_url = api_url.rstrip("/")
        self.devices: dict[str, DeviceCredentials] = {}
        doc = self._read()
        if doc.get("api_url") == self.api_url:
            for key, entry in (doc.get("devices") or {}).items():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    self.devices[str(key)] = DeviceCredentials.from_json(entry)

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def get(self, key: str, product_id: str) -> DeviceCredentials | None:
        creds = self.devices.get(key)
        return creds if creds is not None and creds.product_id == product_id else None

    def put(self, key: str, creds: DeviceCredentials) -> None:
        self.devices[key] = creds
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"api_url": self.api_url, "devices": {k: v.to_json() for k, v in sorted(self.devices.items())}}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(doc, handle, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
