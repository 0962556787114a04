"""Speech out: text to speech with espeak-ng (Debian's ``espeak-ng`` package; formant synthesis, no model files).

``await EspeakTTS().synthesize("The kitchen light is on", language="en")`` gives a :class:`Speech`: a 16 kHz
mono :class:`~tosplus.services.voice.audio.Audio` and the same as WAV bytes. Voices: ``en`` -> ``en-us``,
``en-GB`` -> ``en-gb``, ``zh``/``zh-CN``/``cmn`` -> ``cmn`` (Mandarin), or any espeak-ng voice name with an
optional variant (``en-us+f2``). The text goes in on standard input, never as a command-line argument.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass
from typing import Final

from tosplus.errors import ConfigError, InvalidInput

from .audio import Audio, load

__all__ = ["VOICES", "EspeakTTS", "Speech", "voice_for"]

VOICES: Final = {
    "en": "en-us",
    "en-us": "en-us",
    "en-gb": "en-gb",
    "zh": "cmn",
    "zh-cn": "cmn",
    "zh-hans": "cmn",
    "cmn": "cmn",
    "yue": "yue",
    "zh-hk": "yue",
}
MAX_CHARS: Final = 1000
_VOICE_NAME = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*(\+[a-z0-9]{1,12})?$")


@dataclass(frozen=True, eq=False)
class Speech:
    """Synthesised speech: 16 kHz mono audio, and the same as a WAV file."""

    text: str
    voice: str
    audio: Audio

    @property
    def wav(self) -> bytes:
        return self.audio.wav()

    @property
    def seconds(self) -> float:
        return self.audio.seconds


def voice_for(language: str, variant: str | None = None) -> str:
    """The espeak-ng voice for a language tag (or an espeak-ng voice name), with an optional ``+variant``."""
    tag = language.strip().lower().replace("_", "-")
    voice = VOICES.get(tag, tag)
    if variant:
        voice = f"{voice.split('+')[0]}+{variant.lstrip('+')}"
    if not _VOICE_NAME.match(voice):
        raise InvalidInput(f"unknown voice {language!r}")
    return voice


class EspeakTTS:
    """espeak-ng run as a subprocess (``--stdout``); one process per request, no state between them."""

    name = "espeak-ng"

    def __init__(self, *, executable: str | None = None, timeout: float = 10.0) -> None:
        self._exe = executable
        self.timeout = timeout

    @property
    def executable(self) -> str:
        exe = self._exe or shutil.which("espeak-ng")
        if exe is None:
            raise ConfigError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
        return exe

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({"en", "zh"})

    async def synthesize(
        self,
        text: str,
        *,
        language: str = "en",
        variant: str | None = None,
        speed: int = 175,
        pitch: int = 50,
    ) -> Speech:
        """Speak ``text``; ``speed`` in words per minute (80..450), ``pitch`` 0..99."""
        text = " ".join(text.split())
        if not text:
            raise InvalidInput("nothing to say: the text is empty")
        if len(text) > MAX_CHARS:
            raise InvalidInput(f"text longer than {MAX_CHARS} characters")
        if not 80 <= speed <= 450 or not 0 <= pitch <= 99:
            raise InvalidInput("speed must be 80..450 words per minute and pitch 0..99")
        voice = voice_for(language, variant)
        args = [self.executable, "-v", voice, "-s", str(speed), "-p", str(pitch), "-b", "1", "--stdout"]
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise ConfigError(f"cannot run espeak-ng: {e.strerror or e}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise InvalidInput("speech synthesis took too long") from None
        if proc.returncode != 0 or not out:
            detail = err.decode("utf-8", "replace").strip()[:200]
            raise InvalidInput(f"espeak-ng could not speak with voice {voice!r}: {detail or proc.returncode}")
        # espeak-ng streams its WAV (the header claims 2 GB); load() reads what is there and converts to 16 kHz
        return Speech(text, voice, load(out, max_seconds=120.0))
