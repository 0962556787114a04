"""Voice activity: speech found with its start and end; silence, noise and hum are not speech."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tosplus.errors import InvalidInput
from tosplus.services.voice.audio import SAMPLE_RATE, Audio
from tosplus.services.voice.synth_set import add_noise
from tosplus.services.voice.tts import EspeakTTS
from tosplus.services.voice.vad import VoiceActivity, has_speech, speech_segments, trim

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


async def spoken(text: str) -> np.ndarray:
    speech = await EspeakTTS().synthesize(text)
    x = speech.audio.as_float()
    loud = np.nonzero(np.abs(x) > 1e-3)[0]
    return x[loud[0] : loud[-1] + 1]


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


def test_silence_and_noise_are_not_speech() -> None:
    rng = np.random.default_rng(3)
    n = 3 * SAMPLE_RATE
    pink = add_noise(np.zeros(n, np.float32) + 1e-3, 0.0, "pink", rng)
    clips = {
        "digital silence": np.zeros(n, np.float32),
        "white noise": 0.1 * rng.standard_normal(n),
        "loud white noise": 0.4 * rng.standard_normal(n),
        "pink noise": 0.3 * pink / np.abs(pink).max(),
        "mains hum": 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / SAMPLE_RATE),
        "tone": 0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / SAMPLE_RATE),
    }
    for name, x in clips.items():
        audio = Audio.from_float(np.clip(x, -1, 1))
        assert not has_speech(audio), name
        assert trim(audio) is None, name
        vad = VoiceActivity()
        events = [vad.feed(audio.samples[i : i + 320]) for i in range(0, len(audio), 320)]
        assert events == [None] * len(events), name


@needs_espeak
async def test_streaming_start_and_end_of_speech() -> None:
    speech = await spoken("turn on the kitchen light")
    x = np.concatenate([quiet(1.0), speech, quiet(1.5)])
    audio = Audio.from_float(x)
    speech_end = 1.0 + len(speech) / SAMPLE_RATE
    vad = VoiceActivity(silence_ms=300)
    events = []
    for i in range(0, len(audio), 480):  # 30 ms chunks
        event = vad.feed(audio.samples[i : i + 480])
        if event is not None:
            events.append(event)
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert 0.9 <= start.speech_start_s <= 1.15
    assert start.at_s < 1.3  # the start is known within a few windows
    # the end comes the silence window after the speech stops (plus at most one window)
    assert speech_end + 0.25 <= end.at_s <= speech_end + 0.45
    utterance = vad.speech()
    assert len(speech) / SAMPLE_RATE < utterance.seconds < len(speech) / SAMPLE_RATE + 0.9
    assert vad.feed(audio.samples[:320]) is None  # after the end nothing more is reported until reset


@needs_espeak
async def test_whole_clip_segments_and_speech_in_noise() -> None:
    first, second = await spoken("play channel five"), await spoken("pause the tv")
    x = np.concatenate([quiet(0.5), first, quiet(1.2), second, quiet(0.5)])
    segments = speech_segments(Audio.from_float(x))
    assert len(segments) == 2
    assert segments[0][0] == pytest.approx(0.5, abs=0.1)
    noisy = add_noise(x, 10.0, "white", np.random.default_rng(1))
    assert len(speech_segments(Audio.from_float(np.clip(noisy, -1, 1)))) == 2
    trimmed = trim(Audio.from_float(x), pad_s=0.1)
    assert trimmed is not None and trimmed.seconds < len(x) / SAMPLE_RATE - 0.6


@needs_espeak
async def test_long_chunks_and_time_limit() -> None:
    speech = await spoken("set the thermostat to twenty one degrees and then turn on the fan")
    audio = Audio.from_float(np.concatenate([quiet(0.5), speech, quiet(1.0)]))
    vad = VoiceActivity(max_speech_s=1.0)
    events = [e for i in range(0, len(audio), 16000) if (e := vad.feed(audio.samples[i : i + 16000]))]
    assert events[-1].kind == "end" and events[-1].timed_out
    with pytest.raises(InvalidInput):
        VoiceActivity().feed(b"\x00\x00\x00")
    with pytest.raises(InvalidInput):
        VoiceActivity().feed(np.zeros(3 * SAMPLE_RATE, np.int16))
