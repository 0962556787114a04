"""The homes-and-people API, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from tosplus.services.homes.routes import audit, auth, binding, homes, me
    from tosplus.services.payments import routes as payments
    from tosplus.services.payments import (
        routes_activation,
        routes_intents,
        routes_owner,
        routes_refunds,
        routes_withdrawals,
    )
    from tosplus.services.scenes import routes as scenes
    from tosplus.services.sessions.routes import router as sessions_router
    from tosplus.services.voice.routes import router as voice_text
    from tosplus.services.voice.routes_audio import router as voice_audio
    from tosplus.services.voice.routes_device import router as voice_device

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
        routes_owner.router,
        routes_activation.router,
        routes_withdrawals.router,
        sessions_router,
        voice_text,
        voice_audio,
        voice_device,
    ]
