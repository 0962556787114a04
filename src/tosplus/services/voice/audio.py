"""Audio in: every sound the voice pipeline hears becomes an :class:`Audio` (16 kHz, mono, 16-bit).

:func:`load` accepts WAV (any rate and channel count; 8/16/24/32-bit integer or float samples), OGG (Vorbis or
Opus), FLAC and the other containers of the libsndfile bundled with the ``soundfile`` wheel, or raw 16-bit
little-endian PCM when the caller names its rate. Other rates are converted with ``soxr`` and channels are
averaged. Malformed input raises :class:`~tosplus.errors.InvalidInput`; input longer than the limit raises
:class:`~tosplus.errors.TooLarge`; neither ever takes the hub down.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from tosplus.errors import InvalidInput, TooLarge

__all__ = ["MAX_BYTES", "MAX_SECONDS", "SAMPLE_RATE", "Audio", "load", "resample"]

SAMPLE_RATE: Final = 16_000
MAX_SECONDS: Final = 30.0
MAX_BYTES: Final = 64 * 1024 * 1024
_MIN_RATE: Final = 4_000
_MAX_RATE: Final = 384_000
_MAX_CHANNELS: Final = 32

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono 16 kHz signed 16-bit samples (a read-only numpy array)."""

    samples: Samples

    def __post_init__(self) -> None:
        s = np.ascontiguousarray(self.samples, dtype=np.int16).reshape(-1)
        s.setflags(write=False)
        object.__setattr__(self, "samples", s)

    @property
    def rate(self) -> int:
        return SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.samples)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Audio) and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_pcm(cls, pcm: bytes | bytearray | memoryview) -> Audio:
        """Audio from raw 16 kHz mono 16-bit little-endian PCM."""
        raw = bytes(pcm)
        if len(raw) % 2:
            raise InvalidInput("raw PCM must be 16-bit samples: an even number of bytes")
        return cls(np.frombuffer(raw, dtype="<i2").astype(np.int16))

    @classmethod
    def from_float(cls, samples: npt.ArrayLike, rate: int = SAMPLE_RATE) -> Audio:
        """Audio from float samples in [-1, 1] (mono, or frames x channels) at ``rate``."""
        return cls(_to_int16(resample(_as_mono(np.asarray(samples, dtype=np.float32)), rate)))

    @classmethod
    def silence(cls, seconds: float) -> Audio:
        return cls(np.zeros(round(seconds * SAMPLE_RATE), dtype=np.int16))

    def pcm(self) -> bytes:
        """Raw 16 kHz mono 16-bit little-endian PCM."""
        return self.samples.astype("<i2").tobytes()

    def as_float(self) -> npt.NDArray[np.float32]:
        return self.samples.astype(np.float32) / 32768.0

    def wav(self) -> bytes:
        """The audio as a 16-bit PCM WAV file."""
        out = io.BytesIO()
        sf.write(out, self.samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        return out.getvalue()

    def slice(self, start_s: float, end_s: float | None = None) -> Audio:
        a = max(0, round(start_s * SAMPLE_RATE))
        b = len(self.samples) if end_s is None else max(a, round(end_s * SAMPLE_RATE))
        return Audio(self.samples[a:b])

    def __add__(self, other: Audio) -> Audio:
        return Audio(np.concatenate([self.samples, other.samples]))


def resample(samples: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """Mono float samples at ``rate`` converted to 16 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE or len(samples) == 0:
        return samples
    out: npt.NDArray[np.float32] = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return out


def load(
    source: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    rate: int | None = None,
    channels: int = 1,
    max_seconds: float = MAX_SECONDS,
) -> Audio:
    """Decode a sound file (bytes or a path) into 16 kHz mono :class:`Audio`.

    With ``rate`` the input is raw signed 16-bit little-endian PCM at that rate with ``channels`` interleaved
    channels; without it the container is recognised from its content (WAV, OGG Vorbis/Opus, FLAC, ...).
    """
    data = _read_source(source)
    if not data:
        raise InvalidInput("no audio: the input is empty")
    if rate is not None:
        return _load_raw(data, rate, channels, max_seconds)
    return _load_container(data, max_seconds)


def _read_source(source: bytes | bytearray | memoryview | str | os.PathLike[str]) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) > MAX_BYTES:
            raise TooLarge(f"audio over {MAX_BYTES} bytes")
        return bytes(source)
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise TooLarge(f"audio file over {MAX_BYTES} bytes")
        return path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read audio file {path.name}: {e.strerror or e}") from e


def _check_rate(rate: int) -> None:
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise InvalidInput(f"unsupported sample rate {rate} Hz (accepted: {_MIN_RATE}..{_MAX_RATE})")


def _load_raw(data: bytes, rate: int, channels: int, max_seconds: float) -> Audio:
    _check_rate(rate)
    if not 1 <= channels <= _MAX_CHANNELS:
        raise InvalidInput(f"unsupported channel count {channels}")
    frame = 2 * channels
    if len(data) % frame:
        raise InvalidInput(f"raw PCM length {len(data)} is not a whole number of {channels}-channel 16-bit frames")
    frames = len(data) // frame
    _check_length(frames, rate, max_seconds)
    ints = np.frombuffer(data, dtype="<i2").reshape(frames, channels)
    if channels == 1 and rate == SAMPLE_RATE:
        return Audio(ints[:, 0].astype(np.int16))
    return Audio.from_float(ints.astype(np.float32) / 32768.0, rate)


def _load_container(data: bytes, max_seconds: float) -> Audio:
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            _check_rate(rate)
            if not 1 <= channels <= _MAX_CHANNELS:
                raise InvalidInput(f"unsupported channel count {channels}")
            limit = int(max_seconds * rate) + 1
            # Read at most one frame past the limit: headers may claim any length (streamed WAVs say 2 GB).
            block: npt.NDArray[np.float32] = f.read(frames=limit, dtype="float32", always_2d=True)
    except (InvalidInput, TooLarge):
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError, MemoryError) as e:
        raise InvalidInput(f"not a readable audio file ({_describe(e)})") from e
    _check_length(len(block), rate, max_seconds)
    if len(block) == 0:
        raise InvalidInput("the audio file holds no samples")
    block = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
    return Audio.from_float(block, rate)


def _check_length(frames: int, rate: int, max_seconds: float) -> None:
    if frames > max_seconds * rate:
        raise TooLarge(f"audio longer than {max_seconds:g} s")


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _as_mono(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    return np.ascontiguousarray(x, dtype=np.float32).reshape(-1)


def _to_int16(x: npt.NDArray[np.float32]) -> Samples:
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16)
