"""Speech out with espeak-ng: English and Mandarin voices, WAV bytes that load back, bad requests refused."""

from __future__ import annotations

import shutil

import pytest

from tosplus.errors import ConfigError, InvalidInput
from tosplus.services.voice.audio import load
from tosplus.services.voice.tts import EspeakTTS, voice_for
from tosplus.services.voice.vad import has_speech

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


async def test_english_and_mandarin() -> None:
    tts = EspeakTTS()
    english = await tts.synthesize("The kitchen light is on.", language="en")
    assert english.voice == "en-us"
    assert 0.8 < english.seconds < 4.0
    assert has_speech(english.audio)
    wav = english.wav
    assert wav[:4] == b"RIFF"
    assert load(wav) == english.audio
    mandarin = await tts.synthesize("客厅的灯已经打开了", language="zh-CN")
    assert mandarin.voice == "cmn"
    assert mandarin.seconds > 1.0


async def test_speed_and_variants() -> None:
    tts = EspeakTTS()
    slow = await tts.synthesize("set the thermostat to twenty one degrees", speed=120)
    fast = await tts.synthesize("set the thermostat to twenty one degrees", speed=260)
    assert slow.seconds > fast.seconds * 1.5
    female = await tts.synthesize("hello", language="en-gb", variant="f2")
    assert female.voice == "en-gb+f2"


async def test_text_is_never_an_option() -> None:
    speech = await EspeakTTS().synthesize("--version -w /tmp/x.wav")
    assert speech.seconds > 0.5


async def test_bad_requests() -> None:
    tts = EspeakTTS()
    for text in ["", "   ", "x" * 1001]:
        with pytest.raises(InvalidInput):
            await tts.synthesize(text)
    with pytest.raises(InvalidInput):
        await tts.synthesize("hello", speed=10)
    with pytest.raises(InvalidInput):
        voice_for("en; rm -rf /")
    with pytest.raises(InvalidInput):
        await tts.synthesize("hello", language="xx-nonexistent")
    with pytest.raises(ConfigError):
        await EspeakTTS(executable="/nonexistent/espeak-ng").synthesize("hi")
