"""One spoken request over a WebSocket, whoever holds the microphone (a person's browser or a device).

The client sends binary frames of 16 kHz mono 16-bit PCM as it records and ``{"type": "end"}`` when the button
is let go (or lets the hub hear the end of speech); the hub sends each pipeline event as a JSON text frame as it
happens, then closes. At most 4 MiB of audio (about two minutes) per request; a queue of 200 frames gives
back-pressure to a client that sends faster than the pipeline listens. Once the end of speech is heard, audio
still arriving is read and dropped, so a client that sends faster than real time is never left blocked on a
socket nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
from fastapi import WebSocket, WebSocketDisconnect

from tosplus.core.tokens import Principal
from tosplus.errors import InvalidInput, TosError
from tosplus.services.voice.pipeline import PipelineEvent

if TYPE_CHECKING:
    from tosplus.app import Hub

MAX_AUDIO_BYTES = 4 * 1024 * 1024


async def serve_stream(
    websocket: WebSocket,
    hub: Hub,
    caller: Principal,
    home_id: str,
    *,
    language: str,
    engine: str | None,
    speak: bool,
    device_id: str | None = None,
) -> None:
    """Run the pipeline on what arrives on an accepted ``websocket``; close it when the run ends."""
    audio: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=200)  # ~20 s of 100 ms frames
    heard = asyncio.Event()  # the end of speech was heard: what still arrives is not needed

    async def receive() -> None:
        received = 0
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("bytes") is not None:
                    received += len(message["bytes"])
                    if received > MAX_AUDIO_BYTES:
                        raise InvalidInput("more than 4 MiB of audio in one request")
                    if not heard.is_set():  # after it, keep reading (a client never blocks) and drop
                        await audio.put(message["bytes"])
                elif message.get("text") is not None and _is_end(message["text"]):
                    break
        finally:
            await audio.put(None)

    async def chunks() -> AsyncIterator[bytes]:
        while (chunk := await audio.get()) is not None:
            yield chunk

    async def send(event: PipelineEvent) -> None:
        if event.type == "stt-vad-end":
            heard.set()
            while not audio.empty():  # unblock a receiver waiting for room: the pipeline reads no more
                audio.get_nowait()
        await websocket.send_text(orjson.dumps(event.to_json()).decode())

    receiver = asyncio.create_task(receive())
    try:
        await hub.voice.run(
            caller, home_id, chunks(), send, language=language, engine=engine, speak=speak, device_id=device_id
        )
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
