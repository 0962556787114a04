"""Payment API routes: intents (see docs/payments.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["payments"])
