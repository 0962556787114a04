"""Audio in: every accepted format becomes 16 kHz mono int16; malformed or oversized input is refused clearly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tosplus.errors import InvalidInput, TooLarge
from tosplus.services.voice.audio import SAMPLE_RATE, Audio, load


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def encode(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    out = io.BytesIO()
    sf.write(out, x, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def dominant_hz(audio: Audio) -> float:
    spectrum = np.abs(np.fft.rfft(audio.as_float()))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(audio))


def test_8khz_stereo_wav_becomes_16khz_mono() -> None:
    audio = load(encode(tone(8000, 1.5, channels=2), 8000, "WAV", "PCM_16"))
    assert audio.rate == SAMPLE_RATE
    assert audio.samples.dtype == np.int16
    assert audio.samples.ndim == 1
    assert audio.seconds == pytest.approx(1.5, abs=0.005)
    assert dominant_hz(audio) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_sample_formats(subtype: str) -> None:
    audio = load(encode(tone(44100, 0.5), 44100, "WAV", subtype))
    assert audio.seconds == pytest.approx(0.5, abs=0.005)
    assert dominant_hz(audio) == pytest.approx(440, abs=3)
    assert 0.4 < np.abs(audio.as_float()).max() < 0.6


@pytest.mark.parametrize(("fmt", "subtype"), [("OGG", "VORBIS"), ("OGG", "OPUS"), ("FLAC", "PCM_16")])
def test_ogg_and_flac(fmt: str, subtype: str) -> None:
    rate = 48000 if subtype == "OPUS" else 22050
    audio = load(encode(tone(rate, 2.0, channels=2), rate, fmt, subtype))
    assert audio.rate == SAMPLE_RATE
    assert audio.seconds == pytest.approx(2.0, abs=0.03)
    assert dominant_hz(audio) == pytest.approx(440, abs=3)


def test_raw_pcm_with_rate_and_from_a_path(tmp_path: Path) -> None:
    pcm = (tone(8000, 1.0) * 32767).astype("<i2").tobytes()
    audio = load(pcm, rate=8000)
    assert audio.seconds == pytest.approx(1.0, abs=0.002)
    same = load(pcm, rate=16000)
    assert same.seconds == pytest.approx(0.5)
    assert Audio.from_pcm(same.pcm()) == same
    path = tmp_path / "tone.wav"
    path.write_bytes(audio.wav())
    assert load(path) == audio


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFF\x00\x00\x00\x00WAVEjunk",
        b"OggS" + bytes(100),
        b"not audio at all, just some text" * 10,
        bytes(range(256)) * 40,
    ],
)
def test_malformed_input_is_refused_with_a_clear_error(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        load(data)


def test_truncated_wav_and_bad_raw_input() -> None:
    wav = encode(tone(16000, 1.0), 16000, "WAV", "PCM_16")
    with pytest.raises(InvalidInput):
        load(wav[:30])
    with pytest.raises(InvalidInput, match="16-bit"):
        load(b"\x00\x01\x02", rate=16000)
    with pytest.raises(InvalidInput, match="sample rate"):
        load(b"\x00\x00", rate=10)
    with pytest.raises(InvalidInput):
        load("/nonexistent/sound.wav")


def test_too_long_input_is_refused() -> None:
    with pytest.raises(TooLarge):
        load(encode(tone(8000, 31.0), 8000, "WAV", "PCM_16"))
    with pytest.raises(TooLarge):
        load(bytes(16000 * 2 * 31), rate=16000)
    assert load(bytes(16000 * 2 * 5), rate=16000, max_seconds=5).seconds == 5.0


def test_streamed_wav_header_claiming_gigabytes() -> None:
    """espeak-ng and other streaming writers leave the RIFF sizes at 0x7fffffff: the samples there are read."""
    wav = bytearray(encode(tone(16000, 1.0), 16000, "WAV", "PCM_16"))
    wav[4:8] = (0x7FFFFFFF).to_bytes(4, "little")
    wav[40:44] = (0x7FFFFFFF - 36).to_bytes(4, "little")
    assert load(bytes(wav)).seconds == pytest.approx(1.0, abs=0.01)


def test_non_finite_float_samples_do_not_crash() -> None:
    x = tone(16000, 0.5)
    x[100:200] = np.nan
    x[300] = np.inf
    audio = load(encode(x, 16000, "WAV", "FLOAT"))
    assert audio.seconds == pytest.approx(0.5)
    assert np.isfinite(audio.as_float()).all()
