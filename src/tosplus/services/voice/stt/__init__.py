"""Speech to text: the interface every engine implements, and the values it speaks in.

An engine has a ``name``, the ``languages`` it understands, and ``async transcribe(audio, *, language,
grammar)``. With a :class:`Grammar` (the sentences currently allowed: a list, or a word graph compiled from the
understanding side's templates with example sentences drawn from it) an engine answers one of those sentences
or nothing: a :class:`Transcript` whose
``text`` is empty means "heard speech, but not something we can do" (out of domain), never a forced guess.
Engines run their CPU work in a thread (``asyncio.to_thread``), so the hub's event loop stays free. Engines
that can also decode while the audio arrives implement :class:`StreamingSpeechToText` (``open_stream``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..audio import Audio
from .text import normalize
from .wordgraph import WordGraph

__all__ = ["Grammar", "SpeechStream", "SpeechToText", "StreamingSpeechToText", "Transcript", "WordGraph", "normalize"]


@dataclass(frozen=True)
class Grammar:
    """The sentences a person may say now, with a stable content key.

    Either a list of ``sentences`` (order kept, duplicates dropped), or a ``graph`` holding every allowed sentence
    in normalised words (:func:`normalize`), with ``sentences`` then a sample of it for engines that can only
    compare with a list. An engine that searches a graph (pocketsphinx) uses ``graph`` when there is one.
    """

    sentences: tuple[str, ...]
    graph: WordGraph | None = field(default=None, compare=False)
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        unique = tuple(dict.fromkeys(s.strip() for s in self.sentences if s.strip()))
        object.__setattr__(self, "sentences", unique)
        if self.graph is not None:
            content = "graph " + self.graph.key
        else:
            content = "\n".join(sorted({normalize(s) for s in unique}))
        object.__setattr__(self, "key", hashlib.sha256(content.encode()).hexdigest()[:32])

    @classmethod
    def of(cls, sentences: Iterable[str]) -> Grammar:
        return cls(tuple(sentences))

    @classmethod
    def of_graph(cls, graph: WordGraph, *, examples: int = 2000) -> Grammar:
        """The sentences of ``graph``, with up to ``examples`` of them listed (random paths, deterministic)."""
        return cls(tuple(graph.sample(examples)), graph)

    def allows(self, text: str) -> bool:
        """Whether ``text`` (normalised first) is one of the sentences."""
        said = normalize(text)
        if self.graph is not None:
            return self.graph.accepts(said.split())
        return said in {normalize(s) for s in self.sentences}

    def __len__(self) -> int:
        """Sentences listed (a graph holds many more: see ``graph``)."""
        return len(self.sentences)


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an engine heard.

    ``text``: the sentence (with a grammar: exactly one of its sentences, as written there), or ``""`` when the
    speech was rejected as out of domain or nothing was heard. ``confidence``: 0..1, the engine's belief that
    ``text`` (or, when rejected, ``best_guess``) is what was said. ``seconds_of_audio`` and ``seconds_taken``
    (the engine's decoding time; for a stream, the time spent on it while and after the audio came) give the
    real-time factor. ``best_guess``: the closest sentence even when rejected (for logs and "did you mean").
    """

    text: str
    confidence: float
    seconds_of_audio: float
    seconds_taken: float
    engine: str = ""
    language: str = ""
    best_guess: str = ""
    score: float | None = None  # the engine's own measure behind ``confidence`` (pocketsphinx: the margin)

    @property
    def accepted(self) -> bool:
        return bool(self.text)

    @property
    def real_time_factor(self) -> float:
        return self.seconds_taken / self.seconds_of_audio if self.seconds_of_audio > 0 else 0.0


@runtime_checkable
class SpeechToText(Protocol):
    """A speech-to-text engine."""

    @property
    def name(self) -> str: ...

    @property
    def languages(self) -> frozenset[str]:
        """Language tags understood, e.g. ``{"en"}`` or ``{"en", "zh"}``."""
        ...

    async def transcribe(self, audio: Audio, *, language: str = "en", grammar: Grammar | None = None) -> Transcript:
        """Transcribe one utterance (16 kHz mono). With ``grammar``: one of its sentences or ``""`` (rejected)."""
        ...


class SpeechStream(Protocol):
    """One utterance decoded while it arrives: ``feed`` chunks, then ``finish`` (or ``cancel``)."""

    async def feed(self, chunk: bytes | npt.NDArray[np.int16] | Audio) -> None: ...

    async def finish(self) -> Transcript: ...

    async def cancel(self) -> None: ...


@runtime_checkable
class StreamingSpeechToText(SpeechToText, Protocol):
    """An engine that can decode while the person speaks, so little is left to do at the end of speech."""

    async def open_stream(self, *, language: str = "en", grammar: Grammar | None = None) -> SpeechStream: ...
