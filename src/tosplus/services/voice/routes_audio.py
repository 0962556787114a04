"""Spoken requests to one's home over the API.

- ``POST /voice/audio?home_id=&language=&engine=&device_id=&speak=``: a recorded request (WAV, OGG, FLAC; any
  rate, converted) → the pipeline's events and result in one answer. For scripts, tests and devices that record
  first and send after.
- ``WebSocket /voice/stream?home_id=&language=&engine=&token=``: push-to-talk. The client sends binary frames of
  16 kHz mono 16-bit PCM as it records and ``{"type": "end"}`` when the button is let go (or lets the hub hear
  the end of speech); the hub sends each pipeline event as a JSON text frame as it happens (docs/voice.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect

from tosplus.api.deps import Caller, HubDep, client_address, websocket_principal
from tosplus.errors import InvalidInput, TosError
from tosplus.services.voice.audio import load
from tosplus.services.voice.pipeline import PipelineEvent

router = APIRouter(tags=["voice"])
CHUNK_BYTES = 3_200  # 100 ms of 16 kHz 16-bit mono: how a recording is fed to the pipeline
MAX_UPLOAD = 4 * 1024 * 1024  # the API's body limit


@router.post("/voice/audio")
async def voice_audio(
    request: Request,
    hub: HubDep,
    caller: Caller,
    home_id: str = Query(max_length=64),
    language: str = Query(default="en", max_length=16),
    engine: str | None = Query(default=None, max_length=32),
    device_id: str | None = Query(default=None, max_length=64),
    speak: bool = True,
) -> dict[str, Any]:
    """Run the voice pipeline on a recorded request; answers every event, the transcript, the reply and (with
    ``speak``) the answer as WAV in base64."""
    audio = load(await request.body())
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
    language: str = Query(default="en", max_length=16),
    engine: str | None = Query(default=None, max_length=32),
    token: str | None = None,
) -> None:
    hub = websocket.app.state.hub
    caller = await websocket_principal(websocket, token)
    if caller is None:
        return
    await websocket.accept()
    audio: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=200)  # ~20 s of 100 ms frames: back-pressure

    async def receive() -> None:
        received = 0
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    received += len(message["bytes"])
                    if received > MAX_UPLOAD:
                        raise InvalidInput("more than 4 MiB of audio in one request")
                    await audio.put(message["bytes"])
                elif message.get("text") is not None and _is_end(message["text"]):
                    break
        finally:
            await audio.put(None)

    async def chunks() -> AsyncIterator[bytes]:
        while (chunk := await audio.get()) is not None:
            yield chunk

    async def send(event: PipelineEvent) -> None:
        await websocket.send_text(orjson.dumps(event.to_json()).decode())

    receiver = asyncio.create_task(receive())
    try:
        await hub.voice.run(caller, home_id, chunks(), send, language=language, engine=engine)
    except (WebSocketDisconnect, RuntimeError):
        pass
    except TosError as exc:
        with contextlib.suppress(Exception):
            await websocket.send_text(orjson.dumps({"type": "error", "data": {"message": exc.detail}}).decode())
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
        with contextlib.suppress(Exception):
            await websocket.close()


def _is_end(text: str) -> bool:
    with contextlib.suppress(ValueError):
        message = orjson.loads(text)
        return isinstance(message, dict) and message.get("type") == "end"
    return False
