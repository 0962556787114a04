"""The default engine: pocketsphinx with a grammar of the sentences allowed now, and out-of-domain rejection.

The acoustic model (US English), the CMU dictionary and a general English trigram model all come inside the
``pocketsphinx`` wheel (``pocketsphinx.get_model_path()``); nothing is downloaded.

Grammar: a minimal word graph (:mod:`.wordgraph`) given to pocketsphinx as a finite-state grammar with free
silence between words. The hub's grammars arrive as graphs compiled from the intent templates themselves (every
sentence they accept, in normalised words); a grammar that is only a list of sentences is normalised
(lowercase, numbers spelled as words, punctuation dropped) and made into a graph here. Words missing from the
dictionary get a pronunciation from espeak-ng's letter-to-sound rules (:mod:`.g2p`); sentences whose words
cannot be pronounced are left out (listed in :attr:`CompiledGrammar.dropped`, or for a graph the words in
:attr:`CompiledGrammar.unpronounceable`). Compiled grammars are cached by content key, and each decoder keeps
the searches of the grammars it has used, so a request does not rebuild anything.

Rejection: the same audio is decoded twice more, with the general English trigram model and with a phone loop
(:mod:`.sphinx_confidence`). Speech that is one of the sentences scores about as well through the grammar as
through free English and free phones; speech that is not ("order a pizza", "turn on the washing machine") is
forced through words it does not contain and scores far worse. For a grammar compiled from the templates (a
word graph) the transcript is accepted when the grammar search ended a sentence and the combined score of
:func:`.sphinx_confidence.combined` is at least ``threshold`` (-20, set on the synthesised development sets of
seeds 11 and 23: 1 of 240 out-of-domain utterances reached it); for a grammar given as a short list of sentences
the per-frame English margin alone is used, accepted from ``list_threshold`` (17: no out-of-domain utterance of
seed 1 reached it with pink noise at 15 dB). ``confidence`` is a logistic function of the score (0.5 at the
threshold).

Streaming: pocketsphinx holds the GIL while it decodes, so audio goes in small blocks (a tenth of a second of
speech costs about 20 ms), either as it arrives (:meth:`SphinxEngine.open_stream`: the work is done while
the person speaks, and only the last block and the final search remain at the end of speech) or in blocks
from a whole clip (:meth:`SphinxEngine.transcribe`). Either way the event loop is never held for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from tosplus.errors import InvalidInput, RateLimited

from ..audio import SAMPLE_RATE, Audio
from . import Grammar, Transcript
from .g2p import pronounce
from .sphinx_confidence import measures, new_phone_decoder, segments
from .text import normalize
from .wordgraph import WordGraph

__all__ = ["DEFAULT_THRESHOLD", "LIST_THRESHOLD", "CompiledGrammar", "SphinxEngine", "SphinxStream"]

DEFAULT_THRESHOLD: Final = -20.0  # combined score (.sphinx_confidence, log units per frame), template graphs
LIST_THRESHOLD: Final = 17.0  # grammar-vs-English margin for a grammar given as a list of sentences
_SCALE: Final = 2.0  # margin units for one e-fold of the logistic confidence (the combined score: twice that)
_PAD_S: Final = 0.25  # quiet added either side: the grammar search needs silence to enter and leave
_PAD_FRAMES: Final = 2 * round(_PAD_S * 100)  # the decoder makes 100 frames a second
_BLOCK: Final = SAMPLE_RATE // 10  # samples decoded per call (0.1 s)
_DITHER: Final = 100.0  # standard deviation of the added noise, in 16-bit steps (about -50 dBFS)
_ZERO: Final = -(2**29)
# Where the running cepstral mean starts: the mean reached after a few dozen commands with the noise floor added
# below (the model's own start, 40,3,-1,0..., is far from it). From the model's start, the first utterance a
# decoder heard often ended inside a sentence with a large grammar ("turn on the living room light" rejected).
_CMN_START: Final = "52,-11,-3,2,-8,-6,-2,-8,-4,-5,-3,-1,-1"


@dataclass(frozen=True)
class CompiledGrammar:
    """A grammar as the decoder takes it: a word graph, pronunciations for new words, sentences kept."""

    key: str
    graph: WordGraph
    sentence_of: dict[str, str]  # normalised words -> the sentence as a list grammar wrote it (empty for a graph)
    new_words: dict[str, str]  # word -> ARPAbet, for words the dictionary lacks
    dropped: tuple[str, ...]  # sentences of a list left out: a word could not be pronounced
    unpronounceable: tuple[str, ...] = ()  # words of a graph left out, with every sentence using them

    @property
    def search(self) -> str:
        return "g" + self.key

    def sentence(self, words: str) -> str:
        """The grammar's sentence the decoder's words are, or "" when they are not one (a search that stopped
        inside a sentence)."""
        if self.sentence_of:
            return self.sentence_of.get(words, "")
        return words if words and self.graph.accepts(words.split()) else ""


class _Pair:
    """Three decoders (not thread-safe): one for grammars (it keeps their searches), one for free English, one
    phone loop (:mod:`.sphinx_confidence`)."""

    def __init__(self, max_grammars: int) -> None:
        self.grammar = _new_decoder(lm=False)
        self.english = _new_decoder(lm=True)
        self.phones = new_phone_decoder(_model_dir(), SAMPLE_RATE, _CMN_START)
        self.searches: OrderedDict[str, None] = OrderedDict()
        self.max_grammars = max_grammars

    def use(self, grammar: CompiledGrammar) -> None:
        d = self.grammar
        if grammar.search in self.searches:
            self.searches.move_to_end(grammar.search)
        else:
            new = [(w, p) for w, p in grammar.new_words.items() if d.lookup_word(w) is None]
            for i, (word, phones) in enumerate(new):
                d.add_word(word, phones, i == len(new) - 1)
            _add_fsg(d, grammar.search, *grammar.graph.fsg())
            self.searches[grammar.search] = None
            while len(self.searches) > self.max_grammars:
                old, _ = self.searches.popitem(last=False)
                d.remove_search(old)
        d.activate_search(grammar.search)


class SphinxStream:
    """One utterance being decoded as it arrives. Obtain from :meth:`SphinxEngine.open_stream`.

    ``await feed(chunk)`` as audio comes (16 kHz mono int16, any size), then ``await finish()`` at the end of
    speech for the :class:`Transcript`, or ``await cancel()``. Each stream holds a set of decoders until then;
    ``async with`` cancels a stream left unfinished.
    """

    def __init__(self, engine: SphinxEngine, pair: _Pair, grammar: CompiledGrammar | None) -> None:
        self._engine = engine
        self._pair: _Pair | None = pair
        self._grammar = grammar
        self._rng = np.random.default_rng(0)
        self._pending = np.zeros(0, np.int16)
        self._samples = 0
        self._decode_s = 0.0
        self._lock = threading.Lock()
        started = time.perf_counter()
        if grammar is not None:
            pair.use(grammar)
            pair.grammar.start_utt()
            pair.phones.start_utt()
        pair.english.start_utt()
        self._process(np.zeros(round(_PAD_S * SAMPLE_RATE), np.int16))
        self._decode_s += time.perf_counter() - started

    async def __aenter__(self) -> SphinxStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pair is not None:
            await self.cancel()

    @property
    def seconds_of_audio(self) -> float:
        return self._samples / SAMPLE_RATE

    @property
    def seconds_decoding(self) -> float:
        """CPU time spent so far (the stream keeps up with real time while this stays below the audio's)."""
        return self._decode_s

    async def feed(self, chunk: bytes | npt.NDArray[np.int16] | Audio) -> None:
        samples = _as_samples(chunk)
        self._samples += len(samples)
        self._pending = np.concatenate([self._pending, samples])
        if len(self._pending) >= _BLOCK:
            block, self._pending = self._pending, np.zeros(0, np.int16)
            await asyncio.to_thread(self._timed_process, block)

    async def finish(self) -> Transcript:
        return await asyncio.to_thread(self.finish_sync)

    async def cancel(self) -> None:
        await asyncio.to_thread(self._close)

    def feed_sync(self, samples: npt.NDArray[np.int16]) -> None:
        self._samples += len(samples)
        self._timed_process(samples)

    def finish_sync(self) -> Transcript:
        started = time.perf_counter()
        with self._lock:
            pair = self._pair
            if pair is None:
                raise InvalidInput("this stream is already finished")
            try:
                self._process(self._pending)
                self._process(np.zeros(round(_PAD_S * SAMPLE_RATE), np.int16))
                english_text, english, frames = _end(pair.english)
                if self._grammar is None:
                    return self._transcript(english_text, 0.0, english_text, started, free=True)
                words, score, frames = _end(pair.grammar)
                pair.phones.end_utt()
                path = segments(pair.grammar) if not self._grammar.sentence_of else []
                phones = segments(pair.phones) if path else []
            finally:
                self._pair = None
                self._engine._release(pair)
        sentence = self._grammar.sentence(words)
        if not sentence or score <= _ZERO or frames <= 0:  # the search stopped inside a sentence
            return self._transcript("", -math.inf, words, started)
        # per frame of the audio given (not of the quiet added around it, which scores alike in both searches)
        margin = (score - english) / max(frames - _PAD_FRAMES, 1) if english > _ZERO else math.inf
        if path and math.isfinite(margin):  # a graph from the templates: the combined measure
            found = measures(path, phones, margin, frames, frames - _PAD_FRAMES)
            margin = found.score if found is not None else -math.inf
            if margin == -math.inf:
                return self._transcript("", margin, sentence, started)
        accepted = margin >= self._threshold
        return self._transcript(sentence if accepted else "", margin, sentence, started)

    @property
    def _threshold(self) -> float:
        listed = self._grammar is not None and bool(self._grammar.sentence_of)
        return self._engine.list_threshold if listed else self._engine.threshold

    def _transcript(self, text: str, margin: float, guess: str, started: float, *, free: bool = False) -> Transcript:
        self._decode_s += time.perf_counter() - started
        if free:
            confidence = 0.5 if text else 0.0  # free English has no measure of its own here
        elif margin == -math.inf:
            confidence = 0.0
        else:
            listed = self._grammar is not None and bool(self._grammar.sentence_of)
            z = (margin - self._threshold) / (_SCALE if listed else 2 * _SCALE)
            confidence = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
        return Transcript(
            text=text,
            confidence=round(confidence, 4),
            seconds_of_audio=self.seconds_of_audio,
            seconds_taken=self._decode_s,
            engine="pocketsphinx",
            language="en",
            best_guess=guess,
            score=margin,
        )

    def _timed_process(self, samples: npt.NDArray[np.int16]) -> None:
        started = time.perf_counter()
        with self._lock:
            if self._pair is None:
                raise InvalidInput("this stream is already finished")
            for i in range(0, len(samples), _BLOCK):
                self._process(samples[i : i + _BLOCK])
        self._decode_s += time.perf_counter() - started

    def _process(self, samples: npt.NDArray[np.int16]) -> None:
        if not len(samples) or self._pair is None:
            return
        # A noise floor like a microphone's: digital silence (synthesised or gated audio) wrecks the log-energy
        # features and the running cepstral mean (the grammar search then often stops inside a sentence). With
        # -78 dBFS of dither, clean synthesised commands came out 49/60 exact; with -50 dBFS, 56/60.
        pcm = _dithered(samples, self._rng)
        if self._grammar is not None:
            self._pair.grammar.process_raw(pcm, False, False)
            self._pair.phones.process_raw(pcm, False, False)
        self._pair.english.process_raw(pcm, False, False)

    def _close(self) -> None:
        with self._lock:
            pair, self._pair = self._pair, None
        if pair is not None:
            for d in (pair.grammar, pair.english, pair.phones):
                with contextlib.suppress(RuntimeError):
                    d.end_utt()
            self._engine._release(pair)


class SphinxEngine:
    """pocketsphinx (US English) with grammars and out-of-domain rejection.

    ``threshold``: combined score (:mod:`.sphinx_confidence`) below which speech is rejected (lower accepts more)
    with a grammar compiled from the templates (a word graph); ``list_threshold``: the English margin below
    which speech is rejected with a grammar given as a list of sentences.
    ``streams``: utterances decoded at once (each holds three decoders, about 155 MB together: three copies of
    the acoustic model, the dictionary, the English trigram model and the phone model); more wait.
    ``max_grammars``: compiled grammars kept. ``pronounce_missing``: ask espeak-ng for words the dictionary lacks.
    ``wait_s``: how long a request waits for a free pair before it is refused (:class:`RateLimited`).
    """

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        list_threshold: float = LIST_THRESHOLD,
        streams: int = 2,
        max_grammars: int = 16,
        pronounce_missing: bool = True,
        wait_s: float = 10.0,
    ) -> None:
        self.threshold = threshold
        self.list_threshold = list_threshold
        self.wait_s = wait_s
        self._max_pairs = max(1, streams)
        self._max_grammars = max(1, max_grammars)
        self._pronounce_missing = pronounce_missing
        self._free: list[_Pair] = []
        self._created = 0
        self._cond = threading.Condition()
        self._grammars: OrderedDict[str, CompiledGrammar] = OrderedDict()
        self._grammar_lock = threading.Lock()
        self._pronunciations: dict[str, str | None] = {}
        self._lexicon: frozenset[str] | None = None

    @property
    def name(self) -> str:
        return "pocketsphinx"

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({"en"})

    async def transcribe(self, audio: Audio, *, language: str = "en", grammar: Grammar | None = None) -> Transcript:
        async with await self.open_stream(language=language, grammar=grammar) as stream:
            for i in range(0, len(audio), _BLOCK):
                await stream.feed(audio.samples[i : i + _BLOCK])
            return await stream.finish()

    async def open_stream(self, *, language: str = "en", grammar: Grammar | None = None) -> SphinxStream:
        """Start decoding an utterance that will arrive in chunks (waits while all decoders are busy)."""
        _check_language(language)
        return await asyncio.to_thread(self.open_stream_sync, grammar)

    def open_stream_sync(self, grammar: Grammar | None = None) -> SphinxStream:
        compiled = self.compile(grammar) if grammar is not None else None
        pair = self._acquire()
        try:
            return SphinxStream(self, pair, compiled)
        except BaseException:
            self._release(pair)
            raise

    def decode(self, audio: Audio, grammar: Grammar | None = None) -> Transcript:
        """Blocking whole-clip decode (for tools and measurements; the hub uses :meth:`transcribe`)."""
        stream = self.open_stream_sync(grammar)
        stream.feed_sync(audio.samples)
        return stream.finish_sync()

    def prefer(self, audio: Audio, grammar: Grammar, sentences: Sequence[str]) -> str:
        """Which of ``sentences`` (normalised words, paths of ``grammar``) the decoder answers for ``audio`` when
        only they compete, weighted as in the whole grammar ("" when the search ends in none). A diagnosis: when
        the right sentence wins here but not in the whole grammar, the search lost it; when the wrong one still
        wins, the acoustic model prefers it."""
        compiled = self.compile(grammar)
        transitions, start, final = compiled.graph.fsg_of([s.split() for s in sentences])
        pair = self._acquire()
        try:
            pair.use(compiled)  # its words
            d, search = pair.grammar, "contest"
            _add_fsg(d, search, transitions, start, final)
            d.activate_search(search)
            try:
                d.start_utt()
                quiet = np.zeros(round(_PAD_S * SAMPLE_RATE), np.int16)
                d.process_raw(
                    _dithered(np.concatenate([quiet, audio.samples, quiet]), np.random.default_rng(0)), False, True
                )
                words, _, _ = _end(d)
            except BaseException:
                with contextlib.suppress(RuntimeError):  # an utterance left open by the error
                    d.end_utt()
                raise
            finally:
                d.activate_search(compiled.search)
                d.remove_search(search)
        finally:
            self._release(pair)
        return words

    async def prepare(self, grammar: Grammar) -> CompiledGrammar:
        """Compile a grammar ahead of its first utterance and load it into every idle decoder."""
        return await asyncio.to_thread(self._prepare_sync, grammar)

    def _prepare_sync(self, grammar: Grammar) -> CompiledGrammar:
        compiled = self.compile(grammar)
        pair = self._acquire()
        try:
            pair.use(compiled)
        finally:
            self._release(pair)
        return compiled

    # -- grammars ----------------------------------------------------------------------------------------------

    def compile(self, grammar: Grammar) -> CompiledGrammar:
        """The grammar as a word graph (cached by its key)."""
        with self._grammar_lock:
            hit = self._grammars.get(grammar.key)
            if hit is not None:
                self._grammars.move_to_end(grammar.key)
                return hit
        compiled = self._compile(grammar)
        with self._grammar_lock:
            self._grammars[grammar.key] = compiled
            while len(self._grammars) > self._max_grammars:
                self._grammars.popitem(last=False)
        return compiled

    def _compile(self, grammar: Grammar) -> CompiledGrammar:
        if grammar.graph is not None:
            return self._compile_graph(grammar.key, grammar.graph)
        sentence_of: dict[str, str] = {}
        new_words: dict[str, str] = {}
        dropped: list[str] = []
        for sentence in grammar.sentences:
            words = normalize(sentence)
            if not words or words in sentence_of:
                continue
            missing = {w: self._pronunciation(w) for w in words.split() if not self._known(w)}
            if any(p is None for p in missing.values()):
                dropped.append(sentence)
                continue
            new_words.update({w: p for w, p in missing.items() if p is not None})
            sentence_of[words] = sentence
        graph = WordGraph.of_sentences(w.split() for w in sentence_of)
        return CompiledGrammar(grammar.key, graph, sentence_of, new_words, tuple(dropped))

    def _compile_graph(self, key: str, graph: WordGraph) -> CompiledGrammar:
        missing = {w: self._pronunciation(w) for w in sorted(graph.vocabulary) if not self._known(w)}
        unpronounceable = tuple(w for w, p in missing.items() if p is None)
        new_words = {w: p for w, p in missing.items() if p is not None}
        return CompiledGrammar(key, graph.without(unpronounceable), {}, new_words, (), unpronounceable)

    def _known(self, word: str) -> bool:
        if self._lexicon is None:
            self._lexicon = _dictionary_words()
        return word in self._lexicon

    def _pronunciation(self, word: str) -> str | None:
        if word not in self._pronunciations:
            self._pronunciations[word] = pronounce(word) if self._pronounce_missing else None
        return self._pronunciations[word]

    # -- the decoder pool --------------------------------------------------------------------------------------

    def _acquire(self) -> _Pair:
        with self._cond:
            deadline = time.monotonic() + self.wait_s
            while not self._free and self._created >= self._max_pairs:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RateLimited("speech recognition is busy: every decoder is in use", retry_after_s=1)
                self._cond.wait(left)
            if self._free:
                return self._free.pop()
            self._created += 1
        try:
            return _Pair(self._max_grammars)
        except BaseException:
            with self._cond:
                self._created -= 1
                self._cond.notify()
            raise

    def _release(self, pair: _Pair) -> None:
        with self._cond:
            self._free.append(pair)
            self._cond.notify()


def _check_language(language: str) -> None:
    if language.split("-")[0].lower() != "en":
        raise InvalidInput(f"pocketsphinx understands English only, not {language!r}")


def _dithered(samples: npt.NDArray[np.int16], rng: np.random.Generator) -> bytes:
    """The samples with the noise floor added (see :meth:`SphinxStream._process`), as the decoder's PCM."""
    x = samples.astype(np.float32) + rng.normal(0.0, _DITHER, len(samples)).astype(np.float32)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def _add_fsg(decoder: Any, name: str, transitions: list[Any], start: int, final: int) -> None:
    arcs = [t if t[3] is not None else t[:3] for t in transitions]  # 3-tuples: empty transitions
    decoder.add_fsg(name, decoder.create_fsg(name, start, final, arcs))


def _end(decoder: Any) -> tuple[str, int, int]:
    """End the utterance: (hypothesis, path score in the decoder's log units, frames)."""
    decoder.end_utt()
    hyp = decoder.hyp()
    frames = int(decoder.n_frames())
    if hyp is None:
        return "", _ZERO, frames
    score = decoder.logmath.log(hyp.score) if hyp.score > 0 else _ZERO
    return str(hyp.hypstr), int(score), frames


def _as_samples(chunk: bytes | npt.NDArray[np.int16] | Audio) -> npt.NDArray[np.int16]:
    if isinstance(chunk, Audio):
        return chunk.samples
    if isinstance(chunk, np.ndarray):
        return chunk.astype(np.int16, copy=False).reshape(-1)
    if len(chunk) % 2:
        raise InvalidInput("chunks must be 16-bit samples: an even number of bytes")
    return np.frombuffer(chunk, dtype="<i2").astype(np.int16)


def _model_dir() -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us")


def _new_decoder(*, lm: bool) -> Any:
    from pocketsphinx import Config, Decoder

    model = _model_dir()
    options: dict[str, Any] = {
        "hmm": os.path.join(model, "en-us"),
        "dict": os.path.join(model, "cmudict-en-us.dict"),
        "lm": None,
        "loglevel": "FATAL",
        "samprate": SAMPLE_RATE,
    }
    if not lm:
        # A wider word beam than the default (7e-29): with a grammar of every sentence the templates allow, it
        # pruned the right path of common commands ("turn on the living room light" ended nowhere). No lattice
        # pass: it cost up to 1 s on such grammars and changed no answer for the better.
        options |= {"bestpath": False, "wbeam": 1e-40}
    else:
        # One fast pass is enough for a competitor score: no second (flat) pass, no lattice.
        options |= {"lm": os.path.join(model, "en-us.lm.bin"), "fwdflat": False, "bestpath": False, "maxhmmpf": 5000}
    decoder = Decoder(Config(**options))
    decoder.set_cmn(_CMN_START)
    return decoder


def _dictionary_words() -> frozenset[str]:
    """Every word of the model's dictionary (alternative pronunciations ``word(2)`` folded)."""
    words: set[str] = set()
    with open(os.path.join(_model_dir(), "cmudict-en-us.dict"), encoding="utf-8", errors="replace") as f:
        for line in f:
            words.add(line.split(" ", 1)[0].split("(", 1)[0])
    return frozenset(words)
