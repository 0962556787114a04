"""The REST API (``/api/v1``), the live stream and the device HTTP API, served by one ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from tosplus import __version__
from tosplus.api import problems
from tosplus.api.limits import BodyLimit
from tosplus.api.routes import commands, devices, hub, live, products, telemetry, twins
from tosplus.services.homes.routes import routers as homes_routers

if TYPE_CHECKING:
    from tosplus.app import Hub


def create_api(hub_: Hub) -> FastAPI:
    from tosplus import console
    from tosplus.gateway import http_device

    app = FastAPI(
        title="TOS+ hub API",
        version=__version__,
        description="Products, devices, twins, telemetry, commands and live events. Errors are RFC 7807.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.hub = hub_
    problems.install(app)
    # FastAPI tries routers in order, at about a microsecond per route passed (~150 µs to reach the last of
    # ~150 routes): the busiest routes go first — a device's twin, then the payments, where a cashier waits.
    services = homes_routers()
    money = [router for router in services if _serves_payments(router)]
    first = (twins.router, *money, telemetry.router, commands.router, devices.router)
    for router in (*first, hub.router, products.router, live.router, *(r for r in services if r not in money)):
        app.include_router(router, prefix="/api/v1")
    app.include_router(http_device.router, prefix="/device/v1")
    console.install(app)
    app.add_middleware(BodyLimit, api_limit=4 * 1024 * 1024, device_limit=hub_.settings.max_payload_bytes)
    return app


def _serves_payments(router: APIRouter) -> bool:
    return any(
        getattr(route, "endpoint", None) is not None
        and route.endpoint.__module__.startswith("tosplus.services.payments")  # type: ignore[attr-defined]
        for route in router.routes
    )
