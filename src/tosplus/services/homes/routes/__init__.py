"""The homes-and-people API, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from tosplus.services.homes.routes import audit, auth, binding, homes, me
    from tosplus.services.payments import routes as payments
    from tosplus.services.payments import routes_intents, routes_refunds
    from tosplus.services.scenes import routes as scenes

    return [
        auth.router,
        me.router,
        homes.router,
        binding.router,
        scenes.router,
        audit.router,
        payments.router,
        routes_refunds.router,
        routes_intents.router,
    ]
