"""A device's microphone to the hub: push-to-talk, and replaying recorded or synthesised speech.

A watch, a TV remote or a speaker holds a button (or hears its person start), streams 16 kHz mono 16-bit PCM
to the hub's ``/api/v1/voice/device`` WebSocket with its own credentials, and gets the pipeline's events back
as they happen: what was heard, what was done, and the spoken answer (WAV) to play. The request is carried out
with the permissions of the person who bound the device (docs/voice.md).

    voice = DeviceVoice("http://hub:8080", device_id, secret)
    async with voice.talk() as turn:          # the button is pressed
        async for chunk in microphone():      # 20-100 ms of PCM at a time
            await turn.send(chunk)
            if turn.heard_end:                # the hub heard the end of speech: stop recording
                break
    reply = turn.reply                        # transcript, answer, ok, wav (play it)

    reply = await voice.say_file("request.wav")   # a recording, sent at the pace of speech

    async for reply in voice.listen(microphone(), WakeWord()):   # hands-free: "okay nabu, turn on the light"
        play(reply.wav)

Needs ``websockets`` (installed with the SDK).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tosplus.sdk.errors import DeviceError
from tosplus.sdk.urls import websocket_url

if TYPE_CHECKING:
    from tosplus.sdk.wake import WakeWord

__all__ = ["CHUNK_BYTES", "DeviceVoice", "Turn", "VoiceReply", "voice_url"]

SAMPLE_RATE = 16_000
CHUNK_BYTES = 640  # 20 ms of 16 kHz 16-bit mono
EventHandler = Callable[[dict[str, Any]], Any]


def voice_url(hub: str) -> str:
    """``ws://host:port/api/v1/voice/device`` from a hub's base URL (http, https, ws or wss)."""
    return websocket_url(hub, "/api/v1/voice/device")


@dataclass
class VoiceReply:
    """What the hub made of one request."""

    transcript: str | None = None  # None: nothing was heard, or what was heard is not a request
    answer: str | None = None  # the answer in words
    ok: bool = False  # the request was understood and carried out
    wav: bytes | None = None  # the answer spoken, to play
    events: list[dict[str, Any]] = field(default_factory=list)  # every pipeline event, in order
    error: str | None = None

    @property
    def run_id(self) -> str | None:
        return next((e["data"].get("run_id") for e in self.events if e.get("type") == "run-start"), None)


class Turn:
    """One push of the button: send audio while it is held; the reply fills in as events arrive."""

    def __init__(self, connection: Any, on_event: EventHandler | None) -> None:
        self._connection = connection
        self._on_event = on_event
        self.reply = VoiceReply()
        self.heard_end = False  # the hub's voice detector heard the end of speech: recording may stop
        self._done = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def send(self, pcm: bytes) -> None:
        """Send PCM (16 kHz mono 16-bit little-endian). Dropped once the hub heard the end of speech."""
        if self._done.is_set() or self.heard_end or not pcm:
            return
        with contextlib.suppress(Exception):  # the hub may close as soon as it has the end of speech
            await self._connection.send(bytes(pcm))

    async def finish(self, timeout_s: float = 30.0) -> VoiceReply:
        """The button is let go: tell the hub, and wait for the run to end."""
        if not self._done.is_set():
            with contextlib.suppress(Exception):
                await self._connection.send(orjson.dumps({"type": "end"}).decode())
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
        except TimeoutError as exc:
            raise DeviceError(f"the hub did not answer the voice request within {timeout_s:g} s") from exc
        return self.reply

    async def _read(self) -> None:
        try:
            async for message in self._connection:
                if not isinstance(message, str):
                    continue
                event = orjson.loads(message)
                self._take(event)
                if self._on_event is not None:
                    self._on_event(event)
        except Exception as exc:  # a dropped connection ends the turn with what arrived
            self.reply.error = self.reply.error or f"connection lost: {exc}"
        finally:
            self._done.set()

    def _take(self, event: dict[str, Any]) -> None:
        self.reply.events.append(event)
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "stt-vad-end":
            self.heard_end = True
        elif kind == "stt-end":
            self.heard_end = True
            self.reply.transcript = data.get("text") if data.get("accepted", True) else None
        elif kind == "intent-end":
            self.reply.answer = data.get("answer")
            self.reply.ok = bool(data.get("ok"))
        elif kind == "tts-end" and data.get("wav_base64"):
            self.reply.wav = base64.b64decode(data["wav_base64"])
        elif kind == "error":
            self.reply.error = data.get("message")


class DeviceVoice:
    """The device side of the voice pipeline. ``language``/``engine``/``speak``: None takes the home's settings."""

    def __init__(
        self,
        hub: str,
        device_id: str,
        secret: str,
        *,
        language: str | None = None,
        engine: str | None = None,
        speak: bool | None = None,
        ssl: Any = None,
    ) -> None:
        self.url = voice_url(hub)
        self.device_id = device_id
        self._auth = base64.b64encode(f"{device_id}:{secret}".encode()).decode()
        self.query = {k: v for k, v in (("language", language), ("engine", engine)) if v}
        if speak is not None:
            self.query["speak"] = "true" if speak else "false"
        self.ssl = ssl

    @contextlib.asynccontextmanager
    async def talk(self, on_event: EventHandler | None = None) -> AsyncIterator[Turn]:
        """Push-to-talk: connected while the button is held; leaving the block lets it go and waits for the
        reply (``turn.reply``)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        url = f"{self.url}?{query}" if query else self.url
        try:
            connection = await connect(
                url,
                additional_headers={"Authorization": f"Basic {self._auth}"},
                ssl=self.ssl,
                open_timeout=10,
                max_size=8 * 1024 * 1024,  # the spoken answer comes as base64 WAV in one event
                compression=None,
            )
        except (OSError, InvalidStatus, TimeoutError) as exc:
            raise DeviceError(f"cannot reach the hub's voice endpoint: {exc}") from exc
        turn = Turn(connection, on_event)
        try:
            yield turn
            await turn.finish()
        finally:
            await connection.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await turn._reader
        if turn.reply.error is None and connection.close_code not in (None, 1000, 1005):
            turn.reply.error = f"refused ({connection.close_code}): {connection.close_reason}"
        if turn.reply.error and not turn.reply.events:
            raise DeviceError(turn.reply.error)

    async def say_pcm(self, pcm: bytes, *, realtime: bool = True, on_event: EventHandler | None = None) -> VoiceReply:
        """Send speech as a microphone would (``realtime``: at the pace it was spoken), stop when the hub hears
        its end, and return the reply."""
        async with self.talk(on_event) as turn:
            started = time.monotonic()
            for offset in range(0, len(pcm), CHUNK_BYTES):
                if turn.heard_end:
                    break
                await turn.send(pcm[offset : offset + CHUNK_BYTES])
                if realtime:
                    due = started + (offset + CHUNK_BYTES) / (2 * SAMPLE_RATE)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
        return turn.reply

    async def listen(
        self,
        microphone: AsyncIterator[bytes],
        wake: WakeWord,
        *,
        on_wake: Callable[[], Any] | None = None,
        on_event: EventHandler | None = None,
        max_request_s: float = 15.0,
    ) -> AsyncIterator[VoiceReply]:
        """Hands-free: spot the wake phrase on the device, then stream what follows as one request until the
        hub hears its end (or ``max_request_s``); yields each reply, and goes back to listening. Nothing is
        sent before the phrase is heard. Ends when the microphone does."""
        chunks = aiter(microphone)
        async for pcm in chunks:
            if not wake.feed(pcm):
                continue
            if on_wake is not None:
                on_wake()
            limit = int(max_request_s * 2 * SAMPLE_RATE)
            async with self.talk(on_event) as turn:
                sent = 0
                async for pcm in chunks:
                    await turn.send(pcm)
                    sent += len(pcm)
                    if turn.heard_end or sent >= limit:
                        break
            wake.reset()
            yield turn.reply

    async def say_file(self, path: str | Path, *, realtime: bool = True) -> VoiceReply:
        """A WAV recording (16 kHz, mono, 16-bit: what the hub takes; convert others first) sent as speech."""
        with wave.open(str(path), "rb") as recording:
            shape = (recording.getframerate(), recording.getnchannels(), recording.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 2):
                raise DeviceError(
                    f"{path}: {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit; 16 kHz mono 16-bit needed"
                )
            pcm = recording.readframes(recording.getnframes())
        return await self.say_pcm(pcm, realtime=realtime)
