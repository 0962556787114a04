"""A spoken wake phrase, heard on the device itself: nothing leaves the microphone until it is said.

microWakeWord (the ``pymicro-wakeword`` package, ``pip install 'tosplus[wake]'``) runs a small streaming
network over 10 ms feature frames; its wheel carries four trained phrases and the TensorFlow Lite library, so
nothing is downloaded. A phrase of our own ("hey TOS") needs a model trained for it; until one is packaged,
devices choose among these. ``okay nabu`` is the default: Home Assistant's, and on synthesised speech the
steadiest in noise (BENCHMARKS.md "Voice: wake phrase").
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["PHRASES", "WakeWord"]

PHRASES: Final = {"okay_nabu": "okay nabu", "hey_jarvis": "hey jarvis", "hey_mycroft": "hey mycroft", "alexa": "alexa"}


class WakeWord:
    """Feed it the microphone's 16 kHz mono 16-bit PCM in any chunk size; ``feed`` answers True when the phrase
    was just said (the detector then starts afresh)."""

    def __init__(self, model: str = "okay_nabu") -> None:
        if model not in PHRASES:
            raise ValueError(f"no wake phrase {model!r}: one of {', '.join(PHRASES)}")
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError as exc:
            raise RuntimeError(f"the wake phrase needs pip install 'tosplus[wake]' ({exc})") from exc
        self.model = model
        self.phrase = PHRASES[model]
        self._detector: Any = MicroWakeWord.from_builtin(Model(model))
        self._features: Any = MicroWakeWordFeatures()
        self._odd = b""  # a byte left over from a chunk of odd length

    def feed(self, pcm: bytes) -> bool:
        data = self._odd + bytes(pcm)
        cut = len(data) - len(data) % 2
        data, self._odd = data[:cut], data[cut:]
        for features in self._features.process_streaming(data):
            if self._detector.process_streaming(features):
                self.reset()
                return True
        return False

    def reset(self) -> None:
        self._detector.reset()
        self._features.reset()
        self._odd = b""
