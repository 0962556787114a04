"""Understanding typed or transcribed requests: text → intent and slots, with the names of the person's home.

- ``home_slots(hub, principal, home_id)``: the rooms, devices, scenes, merchants and apps the caller may name;
- ``recognize(text, language, slots)``: a ``Recognized`` (intent, slots, matched text) or ``None``;
- ``expand_sentences(language, slots, limit=...)``: concrete sentences sampled from the templates;
- ``speech_graph.template_graph(language, slots)``: every sentence the templates accept, as the word graph a
  speech engine searches (what the hub gives pocketsphinx).
"""

from tosplus.services.voice.understanding.grammar import expand_sentences
from tosplus.services.voice.understanding.loader import LANGUAGES, load_intents, normalize_language
from tosplus.services.voice.understanding.recognizer import Recognized, clean, detect_language, recognize
from tosplus.services.voice.understanding.slots import DeviceName, MerchantName, SceneName, Slots, home_slots, kind_of

__all__ = [
    "LANGUAGES",
    "DeviceName",
    "MerchantName",
    "Recognized",
    "SceneName",
    "Slots",
    "clean",
    "detect_language",
    "expand_sentences",
    "home_slots",
    "kind_of",
    "load_intents",
    "normalize_language",
    "recognize",
]
