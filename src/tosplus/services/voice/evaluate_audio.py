"""Measuring speech to text: word error rate, exact commands, rejection, speed and latency, per engine.

Each utterance is streamed through the voice-activity detector in 20 ms chunks, as a device would send it. From
the start of speech, a streaming engine is fed as the chunks come; an engine without streaming gets the whole
utterance at the end of speech. Latency from the end of speech is what a person waits for: the detector's
hang-over (audio time between the last sound and the end event, which passes in real time on a live stream)
plus the wall-clock time from the end event to the transcript. ``rtf`` counts all decoding time, including
what a streaming engine did while the person spoke (it must stay well below 1 to keep up).

Figures: ``wer`` (jiwer, on normalised words, commands only; a rejected command counts as all words deleted),
``exact`` (share of commands whose transcript is exactly the sentence said), ``false_rejects`` (commands
rejected), ``ood_accepted`` (out-of-domain utterances turned into some sentence: each would be a wrong action),
``rtf`` (decode time / audio time), decode and latency percentiles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from .audio import Audio, load
from .stt import Grammar, SpeechStream, SpeechToText, StreamingSpeechToText, Transcript
from .stt.text import normalize
from .synth_set import Utterance
from .vad import VoiceActivity, speech_segments

__all__ = ["Report", "Result", "evaluate", "from_folder", "percentile"]

CHUNK_S = 0.02
AUDIO_SUFFIXES = (".wav", ".ogg", ".opus", ".flac")


@dataclass(frozen=True, slots=True)
class Result:
    id: str
    said: str
    expected: str
    heard: str
    confidence: float
    voice: str
    speech_seconds: float
    decode_seconds: float
    hangover_seconds: float  # end of speech -> the detector's end event (audio time)
    vad_missed: bool = False

    @property
    def exact(self) -> bool:
        return normalize(self.heard) == normalize(self.expected)

    @property
    def latency_seconds(self) -> float:
        return self.hangover_seconds + self.decode_seconds


@dataclass
class Report:
    engine: str
    language: str
    results: list[Result] = field(default_factory=list)
    seconds_of_audio: float = 0.0
    seconds_decoding: float = 0.0

    @property
    def commands(self) -> list[Result]:
        return [r for r in self.results if r.expected]

    @property
    def out_of_domain(self) -> list[Result]:
        return [r for r in self.results if not r.expected]

    @property
    def wer(self) -> float:
        cmds = self.commands
        if not cmds:
            return math.nan
        return float(jiwer.wer([normalize(r.expected) for r in cmds], [normalize(r.heard) for r in cmds]))

    @property
    def exact(self) -> float:
        cmds = self.commands
        return sum(r.exact for r in cmds) / len(cmds) if cmds else math.nan

    @property
    def false_rejects(self) -> int:
        return sum(1 for r in self.commands if not r.heard)

    @property
    def ood_accepted(self) -> int:
        return sum(1 for r in self.out_of_domain if r.heard)

    @property
    def ood_rejection(self) -> float:
        ood = self.out_of_domain
        return 1 - self.ood_accepted / len(ood) if ood else math.nan

    @property
    def rtf(self) -> float:
        return self.seconds_decoding / self.seconds_of_audio if self.seconds_of_audio else math.nan

    def latencies(self, min_speech_s: float = 0.0, max_speech_s: float = math.inf) -> list[float]:
        return [
            r.latency_seconds
            for r in self.commands
            if not r.vad_missed and min_speech_s <= r.speech_seconds <= max_speech_s
        ]

    def summary(self) -> dict[str, Any]:
        decode = [r.decode_seconds for r in self.results]
        lat = self.latencies()
        long = self.latencies(2.5, 3.5)
        return {
            "engine": self.engine,
            "language": self.language,
            "commands": len(self.commands),
            "out_of_domain": len(self.out_of_domain),
            "wer": self.wer,
            "exact": self.exact,
            "false_rejects": self.false_rejects,
            "ood_accepted": self.ood_accepted,
            "ood_rejection": self.ood_rejection,
            "rtf": self.rtf,
            "decode_p50_s": percentile(decode, 50),
            "decode_p95_s": percentile(decode, 95),
            "latency_p50_s": percentile(lat, 50),
            "latency_p95_s": percentile(lat, 95),
            "latency_p95_3s_s": percentile(long, 95),
            "commands_3s": len(long),
        }

    def mistakes(self) -> list[Result]:
        return [r for r in self.results if not r.exact]


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else math.nan


async def evaluate(
    engine: SpeechToText,
    utterances: Sequence[Utterance],
    *,
    grammar: Grammar | None,
    language: str = "en",
    silence_ms: int = 300,
    progress: Any = None,
) -> Report:
    """Stream each utterance through voice activity detection and the engine; one at a time (for latency).

    ``progress``: called with no arguments after each utterance (e.g. a progress bar's advance).
    """
    report = Report(engine=engine.name, language=language)
    vad = VoiceActivity(silence_ms=silence_ms)
    for u in utterances:
        vad.reset()
        if isinstance(engine, StreamingSpeechToText):
            transcript, end_at, finish_s = await _streamed(engine, vad, u.audio, grammar, language)
        else:
            transcript, end_at, finish_s = await _whole(engine, vad, u.audio, grammar, language)
        if transcript is not None:
            report.seconds_of_audio += transcript.seconds_of_audio
            report.seconds_decoding += transcript.seconds_taken
        report.results.append(
            Result(
                id=u.id,
                said=u.said,
                expected=u.expected,
                heard=transcript.text if transcript else "",
                confidence=transcript.confidence if transcript else 0.0,
                voice=f"{u.voice}@{u.speed}",
                speech_seconds=u.speech_seconds,
                decode_seconds=finish_s,
                hangover_seconds=max(0.0, end_at - u.speech_end_s),
                vad_missed=transcript is None,
            )
        )
        if progress is not None:
            progress()
    return report


async def _streamed(
    engine: StreamingSpeechToText, vad: VoiceActivity, audio: Audio, grammar: Grammar | None, language: str
) -> tuple[Transcript | None, float, float]:
    """Decode while the speech arrives: (transcript, audio time of the end event, wall time from it to the
    transcript). ``None`` when the detector heard no speech."""
    step = round(CHUNK_S * audio.rate)
    stream: SpeechStream | None = None
    end_at = audio.seconds
    for i in range(0, len(audio), step):
        chunk = audio.samples[i : i + step]
        event = vad.feed(chunk)
        if stream is not None and (event is None or event.kind != "start"):
            await stream.feed(chunk)
        if event is not None and event.kind == "start":
            stream = await engine.open_stream(language=language, grammar=grammar)
            await stream.feed(vad.speech())  # the speech so far, with the context before its start
        if event is not None and event.kind == "end":
            end_at = event.at_s
            break
    if stream is None:
        return None, end_at, 0.0
    started = time.perf_counter()
    transcript = await stream.finish()
    return transcript, end_at, time.perf_counter() - started


async def _whole(
    engine: SpeechToText, vad: VoiceActivity, audio: Audio, grammar: Grammar | None, language: str
) -> tuple[Transcript | None, float, float]:
    """Collect the utterance, then decode it whole at the end of speech."""
    step = round(CHUNK_S * audio.rate)
    started_speech = False
    end_at = audio.seconds
    for i in range(0, len(audio), step):
        event = vad.feed(audio.samples[i : i + step])
        if event is not None and event.kind == "start":
            started_speech = True
        if event is not None and event.kind == "end":
            end_at = event.at_s
            break
    if not started_speech:
        return None, end_at, 0.0
    started = time.perf_counter()
    transcript = await engine.transcribe(vad.speech(), language=language, grammar=grammar)
    return transcript, end_at, time.perf_counter() - started


def from_folder(folder: str | Path) -> list[Utterance]:
    """Recorded utterances: each audio file (``.wav``, ``.ogg``, ``.opus``, ``.flac``) with a same-named ``.txt``
    transcript (an empty transcript marks out-of-domain speech). Speech times come from the detector."""
    out: list[Utterance] = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.with_suffix(".txt").exists():
            continue
        audio = load(path)
        text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        segments = speech_segments(audio)
        start, end = (segments[0][0], segments[-1][1]) if segments else (0.0, audio.seconds)
        out.append(Utterance(path.stem, text, text, "recorded", 0, "none", None, audio, start, end))
    return out
