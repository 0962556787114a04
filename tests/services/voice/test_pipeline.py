"""The voice pipeline end to end on a real hub: speech (synthesized with espeak-ng) in, the events of every stage
out, the device changed, the answer spoken — through ``POST /voice/audio`` and the push-to-talk WebSocket."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
import websockets

from tests.services.voice.test_voice_api import _desired, _device
from tests.support.hubs import HubUnderTest
from tests.support.people import sign_up
from tosplus.services.voice.audio import Audio, load
from tosplus.services.voice.stt import normalize
from tosplus.services.voice.tts import EspeakTTS

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


async def spoken(text: str, *, silence_s: float = 0.6) -> Audio:
    """``text`` as a person would say it, with the quiet before and after that a microphone records."""
    speech = load((await EspeakTTS().synthesize(text, language="en")).wav)
    quiet = Audio.silence(silence_s)
    return Audio.from_pcm(quiet.pcm() + speech.pcm() + quiet.pcm())


def free_form(hub: HubUnderTest) -> str:
    """The Whisper engine's name (the test extra installs it): it writes what was said, and understanding judges
    it, so out-of-domain speech reaches understanding as it was said. Commands go to the default engine
    (pocketsphinx with the grammar compiled from the templates)."""
    name = next((n for n in hub.hub.voice.engines if n.startswith("whisper")), None)
    if name is None:
        pytest.skip("the whisper extra is not installed")
    return name


def stages(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_a_spoken_command_is_heard_understood_done_and_answered(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room", "Kitchen"))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        audio = await spoken("turn on the living room light")  # not among the sentences sampled before
        response = await owner.api.post(
            "/api/v1/voice/audio", params={"home_id": home["id"], "language": "en"}, content=audio.wav()
        )
        assert response.status_code == 200, response.text
        result = response.json()
        assert stages(result["events"]) == [
            "run-start",
            "stt-start",
            "stt-vad-start",
            "stt-vad-end",
            "stt-end",
            "intent-start",
            "intent-end",
            "tts-start",
            "tts-end",
            "run-end",
        ]
        assert normalize(result["transcript"]) == "turn on the living room light"
        stt_end = next(e for e in result["events"] if e["type"] == "stt-end")
        assert stt_end["data"]["engine"] == "pocketsphinx" and stt_end["data"]["accepted"]
        assert result["reply"]["ok"] and result["reply"]["devices"] == [lamp["id"]]
        assert await _desired(owner, lamp["id"]) == {"on": True}
        tts_end = next(e for e in result["events"] if e["type"] == "tts-end")
        assert tts_end["data"]["seconds"] > 0.3  # the answer, spoken
        assert result["timings_ms"]["speech_end_to_action"] > 0  # measured (its speed: bench/voice.py)


async def test_out_of_domain_speech_and_silence_change_nothing(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        pizza = await spoken("order a large pizza with extra cheese please")
        heard = await owner.api.post(
            "/api/v1/voice/audio",
            params={"home_id": home["id"], "speak": "false", "engine": free_form(hub)},
            content=pizza.wav(),
        )
        assert heard.status_code == 200, heard.text
        reply = heard.json()["reply"]  # heard as it was said, understood as nothing the home can do
        assert reply["recognized"] is None and reply["ok"] is False and reply["done"] == []
        assert "can't help with that" in reply["answer"] and "turn on the living room lights" in reply["answer"]
        assert await _desired(owner, lamp["id"]) == {}
        quiet = await owner.api.post(
            "/api/v1/voice/audio", params={"home_id": home["id"]}, content=Audio.silence(2.0).wav()
        )
        assert [e["type"] for e in quiet.json()["events"]][-2:] == ["error", "run-end"]
        assert quiet.json()["events"][-2]["data"]["code"] == "no-speech"
        broken = await owner.api.post("/api/v1/voice/audio", params={"home_id": home["id"]}, content=b"RIFF1234junk")
        assert broken.status_code == 422, broken.text


async def test_push_to_talk_over_the_websocket(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room", "Kitchen"))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        pcm = (await spoken("turn on the living room light", silence_s=0.3)).pcm()
        base = str(owner.api.base_url).replace("http", "ws", 1)
        token = owner.api.headers["Authorization"][7:]
        url = f"{base}/api/v1/voice/stream?home_id={home['id']}&token={token}"  # the default engine
        events: list[dict[str, Any]] = []
        async with websockets.connect(url) as ws:
            for start in range(0, len(pcm), 640):  # 20 ms frames, as a microphone sends them
                await ws.send(pcm[start : start + 640])
            await ws.send(json.dumps({"type": "end"}))
            while not events or events[-1]["type"] != "run-end":
                events.append(json.loads(await ws.recv()))
        assert "stt-vad-start" in stages(events) and "intent-end" in stages(events)
        stt_end = next(e for e in events if e["type"] == "stt-end")
        assert normalize(stt_end["data"]["text"]) == "turn on the living room light"
        assert await _desired(owner, lamp["id"]) == {"on": True}
