"""``POST /voice/text``: a typed (or already transcribed) request to one's home, understood and acted on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.services.voice.conversation import converse

router = APIRouter(tags=["voice"])


class VoiceText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=500, examples=["turn on the living room lights"])
    language: str | None = Field(default=None, max_length=16, description="en or zh-cn; guessed when missing")
    home_id: str = Field(max_length=64)
    device_id: str | None = Field(
        default=None, max_length=64, description="The device spoken to: its room is meant when none is said"
    )


@router.post("/voice/text")
async def voice_text(body: VoiceText, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    """Understand ``text`` with the names of the caller's home and do it with the caller's permissions.

    Answers ``{"text", "language", "recognized": {"intent", "slots", "text"} | null, "answer", "ok",
    "devices", "done"}``; a request that is not understood is answered with what one can say, and nothing is
    done. 404 for a home the caller does not belong to."""
    reply = await converse(
        hub,
        caller,
        body.home_id,
        body.text,
        language=body.language,
        device_id=body.device_id,
        ip=client_address(request),
    )
    return reply.to_json()
