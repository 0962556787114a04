"""Text → intent and slots, or ``None`` when the request is not one we understand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hassil import recognize_best

from tosplus.services.voice.understanding.loader import LANGUAGES, OURS, ha_language, load_intents, normalize_language
from tosplus.services.voice.understanding.slots import Slots, slot_lists

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Trailing punctuation, ASCII and CJK (full stop, fullwidth comma, !, ?, ;, :, enumeration comma, ellipsis).
_TRAILING = re.compile("[\\s.,!?;:~\u3002\uff0c\uff01\uff1f\uff1b\uff1a\u3001\u2026]+$")
_LEADING = re.compile("^[\\s,\uff0c\u3001]+")
# Slots hassil fills that say how a sentence was built rather than what was asked.
_INTERNAL = frozenset({"conversation_command"})


@dataclass(frozen=True, slots=True)
class Recognized:
    intent: str
    slots: dict[str, Any]  # slot name → value (numbers as int when whole)
    text: str  # the text as matched
    language: str  # en | zh-cn
    template: str | None = None  # the sentence template that matched

    def to_json(self) -> dict[str, Any]:
        return {"intent": self.intent, "slots": self.slots, "text": self.text, "language": self.language}


def detect_language(text: str) -> str:
    """``zh-cn`` when the text has CJK characters, else ``en``."""
    return "zh-cn" if _CJK.search(text) else "en"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def clean(text: str) -> str:
    """The text without the punctuation around it that typing and speech engines add."""
    return _LEADING.sub("", _TRAILING.sub("", text.strip()))


def recognize(text: str, language: str | None, slots: Slots, *, area: str | None = None) -> Recognized | None:
    """The intent and slots of ``text``, matched against the language's intents with ``slots``' names, or
    ``None`` when nothing matches (out of domain, or a name the home does not have).

    ``area`` is the room the request came from (the room of the device spoken to): sentences without a room
    ("turn on the lights", "pause") then mean that room, as with Home Assistant's satellites."""
    lang = normalize_language(language) if language else detect_language(text)
    if lang not in LANGUAGES:
        return None
    said = clean(text)
    if not said or len(said) > 500:
        return None
    context = {"area": {"value": area, "text": area}} if area else None
    result = recognize_best(
        said,
        load_intents(lang),
        slot_lists=slot_lists(slots, lang),
        intent_context=context,
        language=ha_language(lang),
        best_metadata_key=OURS,
        best_slot_name="name",
    )
    if result is None:
        return None
    values = {name: _plain(e.value) for name, e in result.entities.items() if name not in _INTERNAL}
    template = result.intent_sentence.text if result.intent_sentence is not None else None
    return Recognized(result.intent.name, values, said, lang, template)
