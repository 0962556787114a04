"""``POST /voice/text``: a typed (or already transcribed) request to one's home, understood and acted on;
``GET/PATCH /voice/homes/{home_id}/settings``: the home's speech engine per language, language and ``speak``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.services.homes.routes.homes import member_of, owner_of
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


LanguageCode = Annotated[str, StringConstraints(max_length=16)]
EngineName = Annotated[str, StringConstraints(max_length=32)]


class VoiceSettingsChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engines: dict[LanguageCode, EngineName] | None = Field(
        default=None,
        max_length=8,
        description='language -> engine name ("" goes back to the default)',
        examples=[{"en": "pocketsphinx", "zh-cn": "whisper-base"}],
    )
    language: str | None = Field(default=None, max_length=16, description="the home's language: en or zh-cn")
    speak: bool | None = Field(default=None, description="answers spoken (tts-end carries the WAV)")


@router.get("/voice/homes/{home_id}/settings")
async def voice_settings(home_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    """The home's voice settings (any member): ``{"engines": {language: engine in use}, "language", "speak",
    "chosen": {what the owners chose}, "available": {language: [installed engines, the default first]}}``."""
    member_of(hub, caller, home_id)
    settings = hub.voice.settings
    return settings.view(await settings.of(home_id))


@router.patch("/voice/homes/{home_id}/settings")
async def update_voice_settings(
    home_id: str, body: VoiceSettingsChange, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    """Change the home's voice settings (owners; 403 for other members). 422 for an engine that is not installed
    or cannot hear the language, or a language we do not understand. A change is audited ``voice.settings``."""
    owner_of(hub, caller, home_id)
    settings = hub.voice.settings
    home, changed = await settings.change(
        home_id, engines=body.engines, language=body.language, speak=body.speak, by=caller.user_id
    )
    if changed:
        await hub.people.audit.record(
            caller, "voice.settings", home_id=home_id, detail=changed, ip=client_address(request)
        )
    return settings.view(home)
