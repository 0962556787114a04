"""A device's microphone (the SDK's ``DeviceVoice``) on a real hub: a speaker streams a spoken request with its
own credentials, the hub carries it out as the person who bound the speaker, and answers in words and speech."""

from __future__ import annotations

import asyncio
import shutil
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services.voice.test_pipeline import free_form, spoken
from tests.services.voice.test_voice_api import _desired, _device
from tests.support.hubs import HubUnderTest
from tests.support.people import sign_up
from tosplus.sdk.errors import DeviceError
from tosplus.sdk.voice import CHUNK_BYTES, DeviceVoice, voice_url
from tosplus.sdk.wake import WakeWord
from tosplus.services.voice.audio import Audio, load
from tosplus.services.voice.tts import EspeakTTS

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _base(hub: HubUnderTest) -> str:
    return str(hub.api.base_url)


async def test_a_speaker_streams_a_request_and_plays_the_answer(hub: HubUnderTest) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room", "Kitchen"))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        speaker = await _device(hub, owner, home, "speaker", "Kitchen speaker", "Kitchen")
        seen: list[dict] = []
        hub.hub.bus.listen("voice", lambda e: seen.append({"device_id": e.device_id, **e.data}))
        voice = DeviceVoice(_base(hub), speaker["id"], speaker["secret"], engine=free_form(hub))
        events: list[str] = []
        speech = await spoken("turn on the living room light", silence_s=1.2)
        reply = await voice.say_pcm(speech.pcm(), realtime=False, on_event=lambda e: events.append(e["type"]))

        assert reply.error is None and reply.ok, reply
        assert reply.transcript is not None and "living room light" in reply.transcript.lower()
        assert reply.answer and reply.wav is not None and reply.wav[:4] == b"RIFF"
        assert events[0] == "run-start" and events[-1] == "run-end" and "intent-end" in events
        assert await _desired(owner, lamp["id"]) == {"on": True}
        # The run is the speaker's: its events reach the live stream as the speaker's voice events...
        await asyncio.sleep(0.1)
        assert {e["device_id"] for e in seen} == {speaker["id"]} and any(e["type"] == "intent-end" for e in seen)
        # ...and the change is the owner's in the audit log.
        audit = (await owner.api.get(f"/api/v1/homes/{home['id']}/audit")).json()["items"]
        change = next(a for a in audit if a.get("device_id") == lamp["id"])
        assert change["actor"] == owner.email


async def test_devices_that_may_not_talk_are_refused_with_the_reason(hub: HubUnderTest) -> None:
    owner, member = await sign_up(hub, "owner"), await sign_up(hub, "member")
    async with owner.api, member.api:
        home = await owner.create_home(rooms=("Kitchen",))
        speech = (await spoken("turn on the kettle")).pcm()

        loose = await hub.create_device("speaker")  # in no home
        with pytest.raises(DeviceError, match="belongs to no home"):
            await DeviceVoice(_base(hub), loose["id"], loose["secret"]).say_pcm(speech, realtime=False)
        with pytest.raises(DeviceError, match="wrong secret"):
            await DeviceVoice(_base(hub), loose["id"], "not-the-secret").say_pcm(speech, realtime=False)

        # A member binds a watch, then leaves the home: the watch no longer speaks for anyone there.
        invitation = await owner.api.post(f"/api/v1/homes/{home['id']}/invitations", json={"role": "member"})
        accepted = await member.api.post("/api/v1/invitations/accept", json={"code": invitation.json()["code"]})
        assert accepted.status_code == 200, accepted.text
        watch = await _device(hub, member, home, "smartwatch", "Sam's watch", "Kitchen")
        left = await member.api.delete(f"/api/v1/homes/{home['id']}/members/{member.user_id}")
        assert left.status_code == 204, left.text
        with pytest.raises(DeviceError, match="no longer in its home"):
            await DeviceVoice(_base(hub), watch["id"], watch["secret"]).say_pcm(speech, realtime=False)


def test_the_voice_url_from_a_hub_address() -> None:
    assert voice_url("http://hub:8080") == "ws://hub:8080/api/v1/voice/device"
    assert voice_url("https://hub.example/") == "wss://hub.example/api/v1/voice/device"
    assert voice_url("hub:8080") == "ws://hub:8080/api/v1/voice/device"


async def test_the_speaker_simulator_says_words_to_the_hub(hub: HubUnderTest, tmp_path: Path) -> None:
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Kitchen",))
        lamp = await _device(hub, owner, home, "light", "Pendant", "Kitchen")
        speaker = await _device(hub, owner, home, "speaker", "Kitchen speaker", "Kitchen")
        answer = tmp_path / "answer.wav"
        command = [
            sys.executable,
            "-m",
            "tosplus",
            "simulate",
            "speak",
            "turn on the kitchen light",
            "--api",
            _base(hub),
        ]
        command += ["--device-id", speaker["id"], "--secret", speaker["secret"], "--engine", free_form(hub)]
        process = await asyncio.create_subprocess_exec(
            *command, "--answer", str(answer), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
        assert process.returncode == 0, output
        assert "heard: 'turn on the kitchen light" in output.lower() and "done:" in output
        assert answer.read_bytes()[:4] == b"RIFF"
        assert await _desired(owner, lamp["id"]) == {"on": True}


async def test_hands_free_the_wake_phrase_opens_one_request(hub: HubUnderTest) -> None:
    wake_module = pytest.importorskip("pymicro_wakeword", reason="the wake extra is not installed")
    assert wake_module is not None
    owner = await sign_up(hub, "owner")
    async with owner.api:
        home = await owner.create_home(rooms=("Living room",))
        lamp = await _device(hub, owner, home, "light", "Ceiling light", "Living room")
        speaker = await _device(hub, owner, home, "speaker", "Speaker", "Living room")
        runs: list[str] = []
        hub.hub.bus.listen("voice", lambda e: runs.append(e.data["type"]))
        tts = EspeakTTS()
        wake = load((await tts.synthesize("okay nabu", language="en-us")).wav)
        said = load((await tts.synthesize("turn on the living room light", language="en-us")).wav)
        chatter = await spoken("the cat is sleeping on the sofa in the living room")

        async def microphone(*parts: Audio) -> AsyncIterator[bytes]:
            pcm = b"".join(p.pcm() for p in parts)
            for offset in range(0, len(pcm), CHUNK_BYTES):
                yield pcm[offset : offset + CHUNK_BYTES]

        voice = DeviceVoice(_base(hub), speaker["id"], speaker["secret"], engine=free_form(hub))
        # Talk in the room without the phrase: nothing is sent at all.
        replies = [r async for r in voice.listen(microphone(chatter, Audio.silence(1.0)), WakeWord())]
        assert replies == [] and runs == []
        # The phrase, a breath, the request: one run, the light on.
        woken: list[bool] = []
        quiet = Audio.silence(0.5)
        mic = microphone(quiet, wake, Audio.silence(0.3), said, Audio.silence(1.5), chatter)
        replies = [r async for r in voice.listen(mic, WakeWord(), on_wake=lambda: woken.append(True))]
        assert woken == [True] and len(replies) == 1, replies
        assert replies[0].ok and "living room light" in (replies[0].transcript or "").lower(), replies[0]
        assert await _desired(owner, lamp["id"]) == {"on": True}
        assert runs.count("run-start") == 1


def test_wake_phrases_are_the_packaged_ones() -> None:
    pytest.importorskip("pymicro_wakeword", reason="the wake extra is not installed")
    with pytest.raises(ValueError, match="no wake phrase 'hey_tos'"):
        WakeWord("hey_tos")
    assert WakeWord().phrase == "okay nabu" and not WakeWord().feed(b"\x00" * 3201)  # odd sizes are fine


async def test_a_recording_must_be_what_the_hub_takes(tmp_path: Path) -> None:
    wrong = tmp_path / "cd.wav"
    with wave.open(str(wrong), "wb") as recording:
        recording.setnchannels(2)
        recording.setsampwidth(2)
        recording.setframerate(44_100)
        recording.writeframes(b"\x00\x00" * 2 * 4410)
    with pytest.raises(DeviceError, match="44100 Hz, 2 channel"):
        await DeviceVoice("http://127.0.0.1:9", "dev", "secret").say_file(wrong)
