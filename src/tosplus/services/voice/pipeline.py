"""The voice pipeline: audio in → voice activity → speech to text → understanding → action → the answer spoken.

Each stage reports an event, named as Home Assistant's assist pipeline names them, so a console or a device can
show what was heard and done as it happens::

    run-start {run_id, language, engine, device_id}
    stt-start → stt-vad-start {at_s} → stt-vad-end {at_s} → stt-end {text, confidence, accepted, engine, ...}
    intent-start {text} → intent-end {recognized, answer, ok, devices, done, ...}
    tts-start {text} → tts-end {wav_base64, seconds}
    run-end {timings_ms}                    (or error {code, message}, then run-end)

Events go to the caller (``emit``) and, for a run spoken to a device, onto the hub's bus as ``voice`` events of
that device, so the live stream shows them to whoever may see the device.

The audio is 16 kHz mono 16-bit PCM in chunks (a browser's microphone, a device's, or a file cut in chunks);
speech ends when the voice-activity detector hears enough silence, or when the stream ends. With a grammar
engine (pocketsphinx) the grammar is every sentence the intent templates accept with the home's names now,
compiled from the templates into a word graph, so "turn on the desk lamp" is heard when there is a desk lamp,
and what is not a command is rejected rather than forced into one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tosplus.core.bus import Event
from tosplus.core.ids import new_id, now_ms
from tosplus.core.tokens import Principal
from tosplus.errors import InvalidInput, TosError
from tosplus.services.voice.answers import say
from tosplus.services.voice.audio import Audio
from tosplus.services.voice.conversation import Reply, converse
from tosplus.services.voice.settings import HomeVoiceSettings
from tosplus.services.voice.stt import Grammar, SpeechToText, Transcript
from tosplus.services.voice.tts import EspeakTTS
from tosplus.services.voice.understanding import Slots, home_slots, normalize_language
from tosplus.services.voice.understanding.speech_graph import template_graph
from tosplus.services.voice.vad import VoiceActivity

if TYPE_CHECKING:
    from tosplus.app import Hub

log = logging.getLogger(__name__)
VOICE_EVENT = "voice"  # bus event type of runs spoken to a device
MAX_AUDIO_S = 30.0  # a request longer than this is cut off: nobody commands a home for half a minute
GRAMMAR_ENGINES = frozenset({"pocketsphinx"})
GRAMMAR_CACHE = 64  # grammars kept (one per home and language whose names are in use)


@dataclass(frozen=True, slots=True)
class PipelineEvent:
    type: str
    data: dict[str, Any]
    at: int  # ms since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data, "at": self.at}


Emit = Callable[[PipelineEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    transcript: Transcript | None
    reply: Reply | None
    spoken: bytes | None  # the answer as WAV
    timings_ms: dict[str, float]


class Voice:
    """The hub's voice service: engines by name, the default engine per language (a home may choose another:
    ``settings``), text to speech."""

    def __init__(self, hub: Hub, engines: dict[str, SpeechToText], defaults: dict[str, str], tts: EspeakTTS) -> None:
        self.hub = hub
        self.engines = engines
        self.defaults = defaults  # language -> engine name
        self.tts = tts
        self.settings = HomeVoiceSettings(hub.engine, self)  # each home's engine per language
        self._grammars: OrderedDict[str, Grammar] = OrderedDict()

    def engine(self, language: str, name: str | None = None) -> SpeechToText:
        """The engine asked for by name, else the language's default; InvalidInput when none fits."""
        chosen = name or self.defaults.get(language) or next(iter(self.engines), None)
        engine = self.engines.get(chosen or "")
        if engine is None:
            raise InvalidInput(f"no speech engine {chosen!r}; engines: {', '.join(sorted(self.engines)) or 'none'}")
        if _base(language) not in {_base(code) for code in engine.languages}:
            raise InvalidInput(f"the {engine.name} engine does not understand {language!r}")
        return engine

    def grammar(self, language: str, slots: Slots) -> Grammar:
        """Every sentence the templates accept with the home's names (a word graph compiled from the templates, about
        a second for 50 devices: call it in a thread), cached by the names (a renamed device makes a new grammar)."""
        key = hashlib.sha256(f"{language}\n{slots!r}".encode()).hexdigest()
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = Grammar.of_graph(template_graph(language, slots))
            self._grammars[key] = grammar
            while len(self._grammars) > GRAMMAR_CACHE:
                self._grammars.popitem(last=False)
        self._grammars.move_to_end(key)
        return grammar

    async def run(
        self,
        caller: Principal,
        home_id: str,
        chunks: AsyncIterator[bytes],
        emit: Emit,
        *,
        language: str = "en",
        engine: str | None = None,
        device_id: str | None = None,
        speak: bool = True,
        ip: str | None = None,
    ) -> RunResult:
        """One spoken request, from its audio to its answer; every stage reported through ``emit``."""
        run_id = new_id("vrun")
        language = normalize_language(language)
        timings: dict[str, float] = {}

        async def report(kind: str, **data: Any) -> None:
            event = PipelineEvent(kind, {"run_id": run_id, **data}, now_ms())
            await emit(event)
            if device_id is not None:
                self.hub.bus.fire(Event(VOICE_EVENT, device_id, event.to_json(), event.at))

        transcript: Transcript | None = None
        reply: Reply | None = None
        spoken: bytes | None = None
        try:
            stt = self.engine(language, engine or await self.settings.engine_name(home_id, language))
            slots = await home_slots(self.hub, caller, home_id)
            await report("run-start", language=language, engine=stt.name, device_id=device_id)
            await report("stt-start")
            speech, heard_at = await self._listen(chunks, report)
            if speech is None:
                await report("error", code="no-speech", message=say(language, "no_speech_heard"))
                return RunResult(run_id, None, None, None, timings)
            # A grammar engine hears only the home's sentences; a free-form one (Whisper) writes what was said and
            # understanding judges it, as for typed text.
            grammar = await asyncio.to_thread(self.grammar, language, slots) if stt.name in GRAMMAR_ENGINES else None
            transcript = await stt.transcribe(speech, language=language, grammar=grammar)
            timings["stt"] = (time.perf_counter() - heard_at) * 1000
            await report(
                "stt-end",
                text=transcript.text,
                accepted=transcript.accepted,
                confidence=round(transcript.confidence, 3),
                engine=transcript.engine or stt.name,
                seconds_of_audio=round(transcript.seconds_of_audio, 3),
                best_guess=transcript.best_guess,
            )
            await report("intent-start", text=transcript.text)
            if transcript.accepted:
                reply = await converse(
                    self.hub,
                    caller,
                    home_id,
                    transcript.text,
                    language=language,
                    device_id=device_id,
                    ip=ip,
                    slots=slots,
                )
                answer = reply.answer
                await report("intent-end", **reply.to_json())
            else:
                answer = say(language, "not_heard")
                await report("intent-end", recognized=None, answer=answer, ok=False, devices=[], done=[])
            timings["speech_end_to_action"] = (time.perf_counter() - heard_at) * 1000
            if speak:
                await report("tts-start", text=answer)
                said = await self.tts.synthesize(answer, language=language)
                spoken = said.wav
                timings["tts"] = (time.perf_counter() - heard_at) * 1000 - timings["speech_end_to_action"]
                await report("tts-end", wav_base64=base64.b64encode(spoken).decode(), seconds=round(said.seconds, 3))
        except TosError as exc:
            await report("error", code=exc.title.lower().replace(" ", "-"), message=exc.detail)
        finally:
            await report("run-end", timings_ms={k: round(v, 1) for k, v in timings.items()})
        return RunResult(run_id, transcript, reply, spoken, timings)

    async def _listen(
        self, chunks: AsyncIterator[bytes], report: Callable[..., Awaitable[None]]
    ) -> tuple[Audio | None, float]:
        """Feed the voice-activity detector until speech ends (or the stream does); the speech heard, and when
        its end was noticed (perf_counter)."""
        vad = VoiceActivity(max_speech_s=MAX_AUDIO_S / 2)
        carry = b""
        async for chunk in chunks:
            data = carry + chunk
            usable = len(data) - len(data) % 2  # 16-bit samples: an odd byte waits for the next chunk
            carry = data[usable:]
            for start in range(0, usable, 32_000):  # at most 1 s at a time (the detector takes up to 2 s)
                event = vad.feed(data[start : min(start + 32_000, usable)])
                if event is not None and event.kind == "start":
                    await report("stt-vad-start", at_s=round(event.at_s, 3))
                elif event is not None:
                    await report("stt-vad-end", at_s=round(event.at_s, 3), timed_out=event.timed_out)
                    return vad.speech(), time.perf_counter()
            if vad.seconds_fed > MAX_AUDIO_S:
                break
        if vad.in_speech:  # the stream ended while someone was speaking: that is the end of speech
            await report("stt-vad-end", at_s=round(vad.seconds_fed, 3), timed_out=False)
            return vad.speech(), time.perf_counter()
        return None, time.perf_counter()


def _base(language: str) -> str:
    return language.lower().split("-")[0]


def build_voice(hub: Hub) -> Voice:
    """The hub's voice service with the engines installed: pocketsphinx (English, always), Whisper when the
    ``whisper`` extra is installed (English and Mandarin). English defaults to pocketsphinx, Mandarin to
    Whisper; a request may name another engine."""
    from tosplus.services.voice.stt.sphinx import SphinxEngine

    sphinx = SphinxEngine()
    engines: dict[str, SpeechToText] = {sphinx.name: sphinx}
    defaults = {"en": sphinx.name}
    try:
        from tosplus.services.voice.stt.whisper import WhisperEngine

        whisper = WhisperEngine()
    except ImportError as exc:  # the extra is not installed: Mandarin is not offered
        log.info("Whisper is not installed (%s): English only, with pocketsphinx", exc)
    else:
        engines[whisper.name] = whisper
        if "zh" in whisper.languages:
            defaults["zh-cn"] = whisper.name
    return Voice(hub, engines, defaults, EspeakTTS())
