"""``/hub``: where devices connect and how the hub is doing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tosplus import __version__
from tosplus.api.deps import HubDep, Operator

router = APIRouter(tags=["hub"])


@router.get("/hub")
async def hub_status(hub: HubDep, _: Operator) -> dict[str, Any]:
    s = hub.settings
    online = sum(1 for st in hub.presence.states.values() if st.online)
    return {
        "version": __version__,
        "started_at": hub.started_at,
        "mqtt": {
            "host": hub.mqtt_host,
            "port": hub.mqtt_port,
            "embedded": s.embedded_broker,
            "protocols": ["3.1.1"] if s.embedded_broker else ["3.1.1", "5"],
        },
        "http": {"port": hub.http_port},
        "coap": {"port": hub.coap_port or None},
        "database": hub.engine.dialect.name,
        "devices": {
            "total": len(hub.registry.devices),
            "online": online,
            "broker_accounts_pending": hub.accounts.pending,
        },
        "products": len(hub.registry.products),
        "ingest": dict(
            zip(("accepted", "refused", "batches"), hub.ingest_totals(), strict=True),
            queued=len(hub.ingest.queue),
            workers=s.ingest_workers,
        ),
        "limits": {
            "max_payload_bytes": s.max_payload_bytes,
            "device_rate_per_s": s.device_rate_per_s,
            "device_rate_burst": s.device_rate_burst,
        },
    }
