"""A speech-to-text engine elsewhere, over the Wyoming protocol: one of ours to the pipeline.

A home may already run a recogniser on a stronger machine (wyoming-faster-whisper with a large model, a
Mandarin model, another TOS+ hub): ``TOSPLUS_WYOMING_ENGINES="gpu=tcp://10.0.0.5:10300"`` makes it the engine
``wyoming-gpu``, selectable per request and per home like the built-in ones (``tcp://host:port/<model>`` asks
the server for one of its models by name). At start the hub asks the server
what it offers (``describe``) for the languages; each utterance is one connection: ``transcribe``,
``audio-start``, the audio in 100 ms ``audio-chunk``s, ``audio-stop``, then the ``transcript``. The remote
engine takes no grammar: it is free-form like Whisper, and understanding judges what it wrote.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyomingTranscript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.info import Describe, Info

from tosplus.errors import InvalidInput, TosError

from ..audio import SAMPLE_RATE, Audio
from . import Grammar, Transcript

if TYPE_CHECKING:
    from ..pipeline import Voice

__all__ = ["WyomingEngine", "add_remote_engines", "parse_engines"]
log = logging.getLogger(__name__)

CHUNK_SAMPLES = SAMPLE_RATE // 10


class EngineUnavailable(TosError):
    status = 503
    title = "Service Unavailable"


@dataclass
class WyomingEngine:
    """A remote recogniser at ``uri`` (``tcp://host:port``); ``languages`` as it described them."""

    label: str
    uri: str
    model: str | None = None  # the server's model to ask for by name (None: the server's choice)
    languages: frozenset[str] = frozenset()
    timeout_s: float = 30.0

    @property
    def name(self) -> str:
        return f"wyoming-{self.label}"

    @classmethod
    async def connect(cls, label: str, uri: str, *, timeout_s: float = 5.0) -> WyomingEngine:
        """Ask the server what it recognises; EngineUnavailable when it does not answer as a Wyoming ASR.
        ``uri`` may end in ``/<model>`` to ask for one of the server's models by name."""
        address, _, model = uri.removeprefix("tcp://").partition("/")
        engine = cls(label, "tcp://" + address if uri.startswith("tcp://") else uri, model or None)
        uri = engine.uri
        try:
            async with asyncio.timeout(timeout_s):
                client = AsyncClient.from_uri(uri)
                async with client:
                    await client.write_event(Describe().event())
                    while (event := await client.read_event()) is not None:
                        if Info.is_type(event.type):
                            info = Info.from_event(event)
                            break
                    else:
                        raise EngineUnavailable(f"{uri} closed without describing itself")
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable(f"the Wyoming engine at {uri} cannot be reached: {exc}") from exc
        models = [m for asr in info.asr for m in asr.models if engine.model is None or m.name == engine.model]
        if engine.model is not None and not models:
            raise EngineUnavailable(f"the Wyoming service at {uri} has no model {engine.model!r}")
        languages = {lang.lower() for m in models for lang in m.languages}
        if not languages:
            raise EngineUnavailable(f"the Wyoming service at {uri} offers no speech to text")
        engine.languages = frozenset(languages)
        return engine

    async def transcribe(self, audio: Audio, *, language: str = "en", grammar: Grammar | None = None) -> Transcript:
        started = time.perf_counter()
        samples = audio.pcm()
        step = CHUNK_SAMPLES * 2
        try:
            async with asyncio.timeout(self.timeout_s):
                client = AsyncClient.from_uri(self.uri)
                async with client:
                    await client.write_event(Transcribe(name=self.model, language=language).event())
                    await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                    for offset in range(0, len(samples), step):
                        chunk = AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=samples[offset : offset + step])
                        await client.write_event(chunk.event())
                    await client.write_event(AudioStop().event())
                    while (event := await client.read_event()) is not None:
                        if WyomingTranscript.is_type(event.type):
                            text = WyomingTranscript.from_event(event).text.strip()
                            break
                    else:
                        raise EngineUnavailable(f"the Wyoming engine at {self.uri} closed without a transcript")
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable(f"the Wyoming engine at {self.uri} failed: {exc!r}") from exc
        return Transcript(
            text=text,
            confidence=1.0 if text else 0.0,  # Wyoming carries no confidence
            seconds_of_audio=audio.seconds,
            seconds_taken=time.perf_counter() - started,
            engine=self.name,
            language=language,
            best_guess=text,
        )


def parse_engines(setting: str) -> dict[str, str]:
    """``"gpu=tcp://10.0.0.5:10300, zh=tcp://host:10301/whisper-small"`` → ``{"gpu": "tcp://...", ...}``;
    InvalidInput with the reason for anything else."""
    engines: dict[str, str] = {}
    for item in (part.strip() for part in setting.split(",")):
        if not item:
            continue
        label, sep, uri = item.partition("=")
        label, uri = label.strip(), uri.strip()
        if not sep or not label.replace("-", "").isalnum() or not uri.startswith(("tcp://", "unix://")):
            raise InvalidInput(f"TOSPLUS_WYOMING_ENGINES: {item!r} is not name=tcp://host:port")
        engines[label] = uri
    return engines


async def add_remote_engines(voice: Voice, setting: str | None) -> list[str]:
    """Make the Wyoming engines of ``TOSPLUS_WYOMING_ENGINES`` engines of ``voice``; their names. One that cannot
    be reached now is left out with a warning (the hub starts anyway; restart it once the engine is up)."""
    added: list[str] = []
    for label, uri in parse_engines(setting or "").items():
        try:
            engine = await WyomingEngine.connect(label, uri)
        except TosError as exc:
            log.warning("speech engine wyoming-%s left out: %s", label, exc.detail)
            continue
        voice.engines[engine.name] = engine
        added.append(engine.name)
        log.info("speech engine %s at %s: %s", engine.name, uri, ", ".join(sorted(engine.languages)))
    return added
