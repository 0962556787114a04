"""Spoken requests to one's home over the API.

Without ``language``, ``engine`` or ``speak`` the home's voice settings decide (services/voice/settings.py).

- ``POST /voice/audio?home_id=&language=&engine=&device_id=&speak=``: a recorded request (WAV, OGG, FLAC; any
  rate, converted) → the pipeline's events and result in one answer. For scripts, tests and devices that record
  first and send after.
- ``WebSocket /voice/stream?home_id=&language=&engine=&speak=&token=``: push-to-talk. The client sends binary frames of
  16 kHz mono 16-bit PCM as it records and ``{"type": "end"}`` when the button is let go (or lets the hub hear
  the end of speech); the hub sends each pipeline event as a JSON text frame as it happens (docs/voice.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request, WebSocket

from tosplus.api.deps import Caller, HubDep, client_address, websocket_principal
from tosplus.services.voice.audio import load
from tosplus.services.voice.pipeline import PipelineEvent
from tosplus.services.voice.streaming import serve_stream
from tosplus.services.voice.understanding import normalize_language

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["voice"])
CHUNK_BYTES = 3_200  # 100 ms of 16 kHz 16-bit mono: how a recording is fed to the pipeline


@router.post("/voice/audio")
async def voice_audio(
    request: Request,
    hub: HubDep,
    caller: Caller,
    home_id: str = Query(max_length=64),
    language: str | None = Query(default=None, max_length=16),
    engine: str | None = Query(default=None, max_length=32),
    device_id: str | None = Query(default=None, max_length=64),
    speak: bool | None = None,
) -> dict[str, Any]:
    """Run the voice pipeline on a recorded request; answers every event, the transcript, the reply and (with
    ``speak``) the answer as WAV in base64."""
    audio = load(await request.body())
    language, engine, speak = await home_choices(hub, home_id, language, engine, speak)
    events: list[dict[str, Any]] = []

    async def collect(event: PipelineEvent) -> None:
        events.append(event.to_json())

    async def chunks() -> AsyncIterator[bytes]:
        pcm = audio.pcm()
        for start in range(0, len(pcm), CHUNK_BYTES):
            yield pcm[start : start + CHUNK_BYTES]

    result = await hub.voice.run(
        caller,
        home_id,
        chunks(),
        collect,
        language=language,
        engine=engine,
        device_id=device_id,
        speak=speak,
        ip=client_address(request),
    )
    return {
        "run_id": result.run_id,
        "transcript": result.transcript.text if result.transcript else None,
        "reply": result.reply.to_json() if result.reply else None,
        "events": events,
        "timings_ms": result.timings_ms,
    }


@router.websocket("/voice/stream")
async def voice_stream(
    websocket: WebSocket,
    home_id: str = Query(max_length=64),
    language: str | None = Query(default=None, max_length=16),
    engine: str | None = Query(default=None, max_length=32),
    speak: bool | None = None,
    token: str | None = None,
) -> None:
    hub = websocket.app.state.hub
    caller = await websocket_principal(websocket, token)
    if caller is None:
        return
    await websocket.accept()
    language, engine, speak = await home_choices(hub, home_id, language, engine, speak)
    await serve_stream(websocket, hub, caller, home_id, language=language, engine=engine, speak=speak)


async def home_choices(
    hub: Hub, home_id: str, language: str | None, engine: str | None, speak: bool | None
) -> tuple[str, str | None, bool]:
    """What the request left out, from the home's voice settings: its language, its engine for the language
    (``None``: the language's default), whether to speak. A home the caller is not in gets the defaults here and
    its 404 from the pipeline."""
    settings = hub.voice.settings
    home = await settings.of(home_id)
    language = language or settings.language_of(home)
    # The language's default named here too, so the pipeline need not read the settings again.
    engine = engine or settings.engine_of(home, language) or hub.voice.defaults.get(normalize_language(language))
    return language, engine, settings.speak_of(home) if speak is None else speak
