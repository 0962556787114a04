"""TOS+ speech and intents over the Wyoming protocol, so Home Assistant's voice satellites and tools can use them.

Wyoming (rhasspy's peer-to-peer protocol for voice assistants: JSON event headers with binary payloads over TCP)
is served by the hub when ``TOSPLUS_WYOMING_URI`` is set (e.g. ``tcp://0.0.0.0:10300``):

- ``describe`` → ``info``: our speech-to-text engines and languages, intent recognition and handling, the TTS
  voices;
- ``transcribe`` + ``audio-start`` / ``audio-chunk`` / ``audio-stop`` → ``transcript``: any rate, width and
  channels, converted; the engine asked for by name, else the home's choice for the language (voice settings),
  else the language's default;
- ``recognize {text}`` → ``intent {name, entities}`` or ``not-recognized``;
- ``transcript {text}`` (handle) → ``handled {text}`` (done, with the answer) or ``not-handled``;
- ``synthesize {text}`` → ``audio-start``, ``audio-chunk``s, ``audio-stop`` (espeak-ng).

Wyoming has no authentication: what it may do is what the person whose API key is in
``TOSPLUS_WYOMING_API_KEY`` may do, in their home ``TOSPLUS_WYOMING_HOME`` (their first home when unset), with
their permissions and audit. Without a key, only speech to text and text to speech are offered (nothing in a home
is named or done). Bind it to a trusted network only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
    IntentModel,
    IntentProgram,
    TtsProgram,
    TtsVoice,
)
from wyoming.intent import Entity, Intent, NotRecognized, Recognize
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize

from tosplus import __version__
from tosplus.core.tokens import Principal
from tosplus.errors import InvalidInput, TosError
from tosplus.services.voice.audio import load
from tosplus.services.voice.conversation import converse, language_of
from tosplus.services.voice.understanding import home_slots, recognize

if TYPE_CHECKING:
    from tosplus.app import Hub
    from tosplus.services.voice.pipeline import Voice

log = logging.getLogger(__name__)
ATTRIBUTION = Attribution(name="TOS+", url="https://tosplus.org")
CHUNK_SAMPLES = 1024  # samples per audio-chunk of synthesized speech


class Wyoming:
    """The Wyoming server of a hub: who it acts for, and the server itself."""

    def __init__(self, hub: Hub, voice: Voice, person: Principal | None, home_id: str | None) -> None:
        self.hub = hub
        self.voice = voice
        self.person = person
        self.home_id = home_id
        self._server: AsyncServer | None = None

    @classmethod
    async def open(cls, hub: Hub, api_key: str | None, home_id: str | None) -> Wyoming:
        """Resolve the person of ``api_key`` (and their home) once, at start: a wrong key stops the hub."""
        person = await hub.people.auth.verify(api_key) if api_key else None
        if person is not None and home_id is None and person.user_id is not None:
            homes = hub.people.homes.homes_of(person.user_id)
            home_id = homes[0][0].id if homes else None
        return cls(hub, hub.voice, person, home_id)

    async def serve(self, uri: str) -> None:
        """Listen on ``uri`` (``tcp://host:port``) until cancelled."""
        self._server = AsyncServer.from_uri(uri)
        log.info("Wyoming server on %s (acting for %s)", uri, "a person" if self.person else "nobody: STT/TTS only")
        await self._server.run(lambda reader, writer: _Handler(self, reader, writer))

    def info(self) -> Info:
        engines = [
            AsrModel(
                name=name,
                attribution=ATTRIBUTION,
                installed=True,
                description=f"TOS+ speech to text: {name}",
                version=__version__,
                languages=sorted(engine.languages),
            )
            for name, engine in self.voice.engines.items()
        ]
        acting = self.person is not None and self.home_id is not None
        languages = ["en", "zh"]
        return Info(
            asr=[
                AsrProgram(
                    name="tosplus-stt",
                    attribution=ATTRIBUTION,
                    installed=True,
                    description="TOS+ speech to text (pocketsphinx, Whisper)",
                    version=__version__,
                    models=engines,
                )
            ],
            intent=[
                IntentProgram(
                    name="tosplus-intents",
                    attribution=ATTRIBUTION,
                    installed=acting,
                    description="TOS+ home intents (hassil, home-assistant-intents and TOS+ templates)",
                    version=__version__,
                    models=[self._model(IntentModel, languages)],
                )
            ],
            handle=[
                HandleProgram(
                    name="tosplus-home",
                    attribution=ATTRIBUTION,
                    installed=acting,
                    description="Does what is asked in the TOS+ home, with its person's permissions",
                    version=__version__,
                    models=[self._model(HandleModel, languages)],
                    supports_home_control=acting,
                )
            ],
            tts=[
                TtsProgram(
                    name="tosplus-tts",
                    attribution=ATTRIBUTION,
                    installed=True,
                    description="espeak-ng",
                    version=__version__,
                    voices=[
                        TtsVoice(
                            name=language,
                            attribution=ATTRIBUTION,
                            installed=True,
                            description=f"espeak-ng {language}",
                            version=__version__,
                            languages=[language],
                        )
                        for language in languages
                    ],
                )
            ],
        )

    @staticmethod
    def _model(kind: Any, languages: list[str]) -> Any:
        return kind(
            name="tosplus",
            attribution=ATTRIBUTION,
            installed=True,
            description="TOS+",
            version=__version__,
            languages=languages,
        )


class _Handler(AsyncEventHandler):
    def __init__(self, wyoming: Wyoming, *args: Any) -> None:
        super().__init__(*args)
        self.wyoming = wyoming
        self._transcribe: Transcribe | None = None
        self._format: tuple[int, int, int] | None = None  # rate, width, channels
        self._pcm = bytearray()

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._handle(event)
        except TosError as exc:  # a client's mistake: said, and the connection stays
            log.info("Wyoming request refused: %s", exc.detail)
            await self.write_event(NotHandled(text=exc.detail).event())
        return True

    async def _handle(self, event: Event) -> None:
        w = self.wyoming
        if Describe.is_type(event.type):
            await self.write_event(w.info().event())
        elif Transcribe.is_type(event.type):
            self._transcribe = Transcribe.from_event(event)
            self._pcm.clear()
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._format = (start.rate, start.width, start.channels)
            self._pcm.clear()
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            self._format = (chunk.rate, chunk.width, chunk.channels)
            self._pcm.extend(chunk.audio)
        elif AudioStop.is_type(event.type):
            await self._transcribe_audio()
        elif Recognize.is_type(event.type):
            await self._recognize(Recognize.from_event(event).text)
        elif Transcript.is_type(event.type):
            await self._converse(Transcript.from_event(event).text)
        elif Synthesize.is_type(event.type):
            await self._synthesize(Synthesize.from_event(event))

    async def _transcribe_audio(self) -> None:
        if self._format is None or not self._pcm:
            await self.write_event(Transcript(text="").event())
            return
        rate, width, channels = self._format
        if width != 2:
            raise InvalidInput("audio must be 16-bit samples")
        audio = load(bytes(self._pcm), rate=rate, channels=channels)
        self._pcm.clear()
        asked = self._transcribe
        language = language_of("", asked.language if asked and asked.language else "en")
        voice, home_id = self.wyoming.voice, self.wyoming.home_id
        name = asked.name if asked and asked.name in voice.engines else None
        if name is None and home_id is not None:  # the home's engine for the language, as for the API
            name = await voice.settings.engine_name(home_id, language)
        engine = voice.engine(language, name)
        heard = await engine.transcribe(audio, language=language, grammar=None)
        await self.write_event(Transcript(text=heard.text, language=language).event())

    async def _recognize(self, text: str) -> None:
        w = self.wyoming
        if w.person is None or w.home_id is None:
            await self.write_event(NotRecognized(text=text).event())
            return
        slots = await home_slots(w.hub, w.person, w.home_id)
        recognized = recognize(text, language_of(text, None), slots)
        if recognized is None:
            await self.write_event(NotRecognized(text=text).event())
            return
        entities = [Entity(name=name, value=value) for name, value in recognized.slots.items()]
        await self.write_event(Intent(name=recognized.intent, entities=entities, text=text).event())

    async def _converse(self, text: str) -> None:
        w = self.wyoming
        if w.person is None or w.home_id is None:
            await self.write_event(NotHandled(text="no home to act in: the hub has no Wyoming API key").event())
            return
        reply = await converse(w.hub, w.person, w.home_id, text)
        event = Handled(text=reply.answer) if reply.outcome.ok else NotHandled(text=reply.answer)
        await self.write_event(event.event())

    async def _synthesize(self, request: Synthesize) -> None:
        language = language_of(request.text, request.voice.name if request.voice and request.voice.name else None)
        speech = await self.wyoming.voice.tts.synthesize(request.text, language=language)
        audio = load(speech.wav)
        pcm = audio.pcm()
        await self.write_event(AudioStart(rate=audio.rate, width=2, channels=1).event())
        step = CHUNK_SAMPLES * 2
        for start in range(0, len(pcm), step):
            await self.write_event(
                AudioChunk(rate=audio.rate, width=2, channels=1, audio=pcm[start : start + step]).event()
            )
        await self.write_event(AudioStop().event())
