"""The Wyoming server, talked to with the wyoming package's own client as Home Assistant would: describe, speech
to text, intent recognition, handling in the person's home, and text to speech."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize
from wyoming.tts import Synthesize

from tests.services.voice.test_pipeline import free_form, spoken
from tests.services.voice.test_voice_api import _desired, _device
from tests.support.hubs import HubUnderTest
from tests.support.people import sign_up
from tests.support.services import free_port
from tosplus.errors import InvalidInput, TosError
from tosplus.services.voice.stt import normalize
from tosplus.services.voice.stt.wyoming_client import WyomingEngine, add_remote_engines, parse_engines
from tosplus.services.voice.wyoming_server import Wyoming

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@contextlib.asynccontextmanager
async def served(wyoming: Wyoming) -> AsyncIterator[int]:
    port = free_port()
    task = asyncio.create_task(wyoming.serve(f"tcp://127.0.0.1:{port}"))
    try:
        for _ in range(50):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ask(port: int, *events: Event, until: tuple[str, ...]) -> list[Event]:
    answers: list[Event] = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        while True:
            answer = await asyncio.wait_for(client.read_event(), 60)
            assert answer is not None
            answers.append(answer)
            if answer.type in until:
                return answers


async def test_home_assistant_can_use_tosplus_speech_and_intents(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        key = (await owner.api.post("/api/v1/me/api-keys", json={"name": "home assistant"})).json()["key"]
        wyoming = await Wyoming.open(hub.hub, key, None)
        assert wyoming.home_id == home["id"]  # the person's first home
        async with served(wyoming) as port:
            (info_event,) = await ask(port, Describe().event(), until=("info",))
            info = Info.from_event(info_event)
            assert info.asr[0].models and info.handle[0].supports_home_control and info.tts[0].voices

            whisper = next(n for n in hub.hub.voice.engines if n.startswith("whisper"))
            audio = await spoken("turn on the living room light", silence_s=0.2)
            pcm, chunks = audio.pcm(), []
            for start in range(0, len(pcm), 2048):
                chunks.append(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[start : start + 2048]).event())
            heard = await ask(
                port,
                Transcribe(name=whisper, language="en").event(),
                AudioStart(rate=16000, width=2, channels=1).event(),
                *chunks,
                AudioStop().event(),
                until=("transcript",),
            )
            text = Transcript.from_event(heard[-1]).text
            assert normalize(text) == "turn on the living room light"

            (intent_event,) = await ask(port, Recognize(text=text).event(), until=("intent", "not-recognized"))
            intent = Intent.from_event(intent_event)
            assert intent.name == "HassTurnOn" and {e.name for e in intent.entities} >= {"area"}
            (unknown,) = await ask(port, Recognize(text="order a pizza").event(), until=("intent", "not-recognized"))
            assert NotRecognized.is_type(unknown.type)

            (handled,) = await ask(port, Transcript(text=text).event(), until=("handled", "not-handled"))
            assert Handled.is_type(handled.type) and "Ceiling light" in (Handled.from_event(handled).text or "")
            assert await _desired(owner, lamp["id"]) == {"on": True}
            (refused,) = await ask(port, Transcript(text="order a pizza").event(), until=("handled", "not-handled"))
            assert NotHandled.is_type(refused.type)

            said = await ask(port, Synthesize(text="The light is on.").event(), until=("audio-stop",))
            assert AudioStart.is_type(said[0].type)
            audio_bytes = sum(len(AudioChunk.from_event(e).audio) for e in said if AudioChunk.is_type(e.type))
            assert audio_bytes > 16000  # more than half a second of speech


async def test_a_wyoming_engine_elsewhere_becomes_one_of_ours(hub: HubUnderTest) -> None:
    """TOS+ as a Wyoming client: the engine answers through the protocol, is chosen by name in a request, and an
    engine that cannot be reached is left out without stopping anything."""
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        remote = await Wyoming.open(hub.hub, None, None)  # speech to text only: a recogniser on another machine
        async with served(remote) as port:
            voice = hub.hub.voice
            missing = f"tcp://127.0.0.1:{free_port()}"
            whisper = free_form(hub)  # the remote's model to use, by name
            added = await add_remote_engines(voice, f"far=tcp://127.0.0.1:{port}/{whisper}, gone={missing}")
            assert added == ["wyoming-far"] and "wyoming-gone" not in voice.engines
            engine = voice.engines["wyoming-far"]
            assert isinstance(engine, WyomingEngine) and "en" in engine.languages

            audio = await spoken("turn on the living room light")
            heard = await engine.transcribe(audio, language="en")
            assert normalize(heard.text) == "turn on the living room light" and heard.engine == "wyoming-far"
            response = await owner.api.post(
                "/api/v1/voice/audio",
                params={"home_id": home["id"], "engine": "wyoming-far", "speak": "false"},
                content=audio.wav(),
            )
            assert response.status_code == 200, response.text
            assert response.json()["reply"]["ok"] and await _desired(owner, lamp["id"]) == {"on": True}
        with pytest.raises(TosError, match=r"cannot be reached|failed"):
            await engine.transcribe(audio, language="en")  # the server is gone: a clear error, not a hang
        for bad in ("far", "far=http://x", "=tcp://x:1", "a b=tcp://x:1"):
            with pytest.raises(InvalidInput):
                parse_engines(bad)
        voice.engines.pop("wyoming-far")
