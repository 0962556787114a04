"""Each home's voice settings: the speech engine per language, the home's language, whether answers are spoken.

The typed, recorded and push-to-talk APIs, the pipeline and the Wyoming server use them when a request names no
engine (or language, or ``speak``). Members read them, owners change them (services/voice/routes.py). Only the
choices an owner made are stored; the rest follows the hub's defaults, so a hub that gains an engine offers it
without touching any home. A stored engine that is no longer installed (the ``whisper`` extra removed) falls back
to the default instead of failing every request of the home.

Settings are read from the database on every request rather than cached: a change made through one hub worker is
then seen by all of them, and a primary-key read costs well under a millisecond next to speech recognition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import now_ms
from tosplus.errors import InvalidInput
from tosplus.services.voice import tables as t
from tosplus.services.voice.understanding import LANGUAGES, normalize_language

if TYPE_CHECKING:
    from tosplus.services.voice.pipeline import Voice

DEFAULT_LANGUAGE = "en"
DEFAULT_SPEAK = True


@dataclass(frozen=True, slots=True)
class HomeVoice:
    """A home's stored choices (``None``: the default), and who last changed them."""

    home_id: str
    engines: dict[str, str] = field(default_factory=dict)  # language -> engine name
    language: str | None = None
    speak: bool | None = None
    updated_at: int | None = None
    updated_by: str | None = None


class HomeVoiceSettings:
    """Reads and changes homes' voice settings; validates engines against those ``voice`` has installed."""

    def __init__(self, engine: AsyncEngine, voice: Voice) -> None:
        self.engine = engine
        self.voice = voice

    async def of(self, home_id: str) -> HomeVoice:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(t.voice_home_settings).where(t.voice_home_settings.c.home_id == home_id))
            ).first()
        if row is None:
            return HomeVoice(home_id)
        return HomeVoice(home_id, dict(row.engines or {}), row.language, row.speak, row.updated_at, row.updated_by)

    def engine_of(self, home: HomeVoice, language: str) -> str | None:
        """The engine the home chose for ``language`` if it is still installed and understands it, else None
        (the language's default)."""
        name = home.engines.get(normalize_language(language))
        return name if name is not None and self._understands(name, language) else None

    async def engine_name(self, home_id: str, language: str) -> str | None:
        return self.engine_of(await self.of(home_id), language)

    def language_of(self, home: HomeVoice) -> str:
        return home.language or DEFAULT_LANGUAGE

    def speak_of(self, home: HomeVoice) -> bool:
        return DEFAULT_SPEAK if home.speak is None else home.speak

    def available(self) -> dict[str, list[str]]:
        """Per language of understanding, the installed engines that hear it (the default first)."""
        offered: dict[str, list[str]] = {}
        for language in LANGUAGES:
            names = sorted(n for n in self.voice.engines if self._understands(n, language))
            default = self.voice.defaults.get(language)
            if default in names:
                names.remove(default)
                names.insert(0, default)
            offered[language] = names
        return offered

    def view(self, home: HomeVoice) -> dict[str, Any]:
        """What the API answers: the engine in use per language (chosen or default), the languages and engines
        one may pick, and who changed the settings last."""
        available = self.available()
        engines = {
            language: self.engine_of(home, language) or (names[0] if names else None)
            for language, names in available.items()
        }
        return {
            "home_id": home.home_id,
            "engines": engines,
            "language": self.language_of(home),
            "speak": self.speak_of(home),
            "chosen": dict(sorted(home.engines.items())),
            "available": available,
            "updated_at": home.updated_at,
            "updated_by": home.updated_by,
        }

    async def change(
        self,
        home_id: str,
        *,
        engines: dict[str, str] | None = None,
        language: str | None = None,
        speak: bool | None = None,
        by: str | None = None,
    ) -> tuple[HomeVoice, dict[str, Any]]:
        """Apply an owner's change (``None``: unchanged); the new settings and what changed (for the audit).

        ``engines`` maps languages to engine names; an empty name (``""``) goes back to the language's default.
        InvalidInput for a language we do not understand or an engine that is not installed or cannot hear it."""
        current = await self.of(home_id)
        chosen = dict(current.engines)
        changed: dict[str, Any] = {}
        for asked_language, name in (engines or {}).items():
            code = self._language(asked_language)
            if not name:
                if code in chosen:
                    del chosen[code]
                    changed.setdefault("engines", {})[code] = None
                continue
            if name not in self.voice.engines:
                installed = ", ".join(sorted(self.voice.engines))
                raise InvalidInput(f"no speech engine {name!r} is installed; installed: {installed}")
            if not self._understands(name, code):
                raise InvalidInput(f"the {name} engine does not understand {code!r}")
            if chosen.get(code) != name:
                chosen[code] = name
                changed.setdefault("engines", {})[code] = name
        new_language = current.language
        if language is not None:
            new_language = self._language(language)
            if new_language != self.language_of(current):
                changed["language"] = new_language
        new_speak = current.speak
        if speak is not None:
            new_speak = speak
            if speak != self.speak_of(current):
                changed["speak"] = speak
        if not changed:
            return current, changed
        updated = HomeVoice(home_id, chosen, new_language, new_speak, now_ms(), by)
        values = {
            "engines": updated.engines,
            "language": updated.language,
            "speak": updated.speak,
            "updated_at": updated.updated_at,
            "updated_by": updated.updated_by,
        }
        async with self.engine.begin() as conn:
            done = await conn.execute(
                sa.update(t.voice_home_settings).where(t.voice_home_settings.c.home_id == home_id).values(**values)
            )
            if done.rowcount == 0:
                await conn.execute(sa.insert(t.voice_home_settings).values(home_id=home_id, **values))
        return updated, changed

    def _language(self, language: str) -> str:
        code = normalize_language(language)
        if code not in LANGUAGES:
            raise InvalidInput(f"language {language!r} is not understood; languages: {', '.join(LANGUAGES)}")
        return code

    def _understands(self, name: str, language: str) -> bool:
        engine = self.voice.engines.get(name)
        base = normalize_language(language).split("-")[0]
        return engine is not None and base in {code.lower().split("-")[0] for code in engine.languages}
