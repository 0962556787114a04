"""The REST API (``/api/v1``), the live stream and the device HTTP API, served by one ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

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
    for module in (hub, products, devices, twins, telemetry, commands, live):
        app.include_router(module.router, prefix="/api/v1")
    for router in homes_routers():
        app.include_router(router, prefix="/api/v1")
    app.include_router(http_device.router, prefix="/device/v1")
    console.install(app)
    app.add_middleware(BodyLimit, api_limit=4 * 1024 * 1024, device_limit=hub_.settings.max_payload_bytes)
    return app
