"""One request in words, typed or transcribed: understood with the names of the caller's home and acted on with
the caller's permissions. The typed API (``POST /voice/text``), the voice pipeline and the Wyoming server all
answer through :func:`converse`, so a sentence means the same whichever way it arrived."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tosplus.core.tokens import Principal
from tosplus.errors import NotFound
from tosplus.services.voice.actions import Outcome, act, not_understood
from tosplus.services.voice.answers import say
from tosplus.services.voice.understanding import (
    LANGUAGES,
    Recognized,
    Slots,
    detect_language,
    home_slots,
    normalize_language,
    recognize,
)

if TYPE_CHECKING:
    from tosplus.app import Hub


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    language: str
    recognized: Recognized | None
    outcome: Outcome
    answer: str

    def to_json(self) -> dict[str, Any]:
        data = self.outcome.data
        return {
            "text": self.text,
            "language": self.language,
            "recognized": self.recognized.to_json() if self.recognized else None,
            **self.outcome.to_json(),
            "answer": self.answer,
            **({"payment_intent": data["payment_intent"]} if "payment_intent" in data else {}),
        }


def language_of(text: str, asked: str | None) -> str:
    """The language asked for (normalised), or the one the text is written in."""
    return normalize_language(asked) if asked else detect_language(text)


async def converse(
    hub: Hub,
    caller: Principal,
    home_id: str,
    text: str,
    *,
    language: str | None = None,
    device_id: str | None = None,
    ip: str | None = None,
    slots: Slots | None = None,
) -> Reply:
    """Understand ``text`` in home ``home_id`` and do it as ``caller``; nothing is done for what is not understood.
    ``device_id``: the device spoken to (its room is meant when the sentence names none); NotFound when it is
    not a device of this home the caller may see. ``slots``: the home's names, when the caller has them."""
    lang = language_of(text, language)
    slots = slots if slots is not None else await home_slots(hub, caller, home_id)
    area = None
    if device_id is not None:
        spoken_to = next((d for d in slots.devices if d.id == device_id), None)
        if spoken_to is None:
            raise NotFound(f"no device '{device_id}' in this home")
        area = spoken_to.room
    if lang not in LANGUAGES:
        return Reply(text, lang, None, not_understood("en"), say("en", "unsupported_language"))
    recognized = recognize(text, lang, slots, area=area)
    if recognized is None:
        outcome = not_understood(lang)
    else:
        outcome = await act(hub, caller, home_id, recognized, slots=slots, device_id=device_id, ip=ip)
    return Reply(text, lang, recognized, outcome, outcome.text)
