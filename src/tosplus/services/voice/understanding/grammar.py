"""Concrete sentences for a speech engine's grammar: what the active intents accept, with this home's names.

A grammar-based recogniser (pocketsphinx with a JSGF or finite-state grammar) only hears what it is given, so it
needs the sentences themselves. Expanding every template fully is out of the question (one of Home Assistant's
brightness templates alone expands to millions of sentences), so each template is *sampled*: a random walk
through its alternatives, optionals and permutations, with every list drawn from the home (rooms, devices,
scenes, merchants, apps) and every number range cut to a few values said in words (pocketsphinx has no
digits). Sampling is seeded, so the same home gives the same sentences; templates are visited in turn so a
small ``limit`` still covers every intent.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from typing import Any

from hassil import IntentData, Intents, RangeSlotList, SlotList, TextSlotList, TextSlotValue, WildcardSlotList
from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
)
from hassil.numbers import get_rbnf_engine

from tosplus.services.voice.understanding.loader import ha_language, load_intents, normalize_language
from tosplus.services.voice.understanding.slots import Slots, slot_lists

_SPACES = re.compile(r"\s+")
# Sentences a speech engine can say: letters (any script), spaces and apostrophes; no digits or symbols.
_SPEAKABLE = re.compile(r"^[^\W\d_]+(?:['\s][^\W\d_]+)*$")


class _Unspeakable(Exception):
    """This walk needs digits or free text (a wildcard): no grammar can hold it."""


def _sample_numbers(numbers: RangeSlotList, wanted: int = 8) -> list[float]:
    values = list(numbers.get_numbers())
    if len(values) <= wanted:
        return [float(v) for v in values]
    step = max(1, len(values) // (wanted - 2))
    picked = {values[0], values[-1], *values[::step]}
    # Round values are said more often than odd ones: keep some of them.
    picked.update(v for v in values if isinstance(v, int) and v % 10 == 0 and v <= 100)
    return sorted(float(v) for v in picked)


@functools.cache
def number_words(value: int, language: str) -> str:
    """A number as the understanding side reads it in words ("twenty one", not "twenty-one"; 三十二, not 叁拾贰)."""
    texts = get_rbnf_engine(ha_language(language)).format_number(value).text_by_ruleset
    text = texts.get("spellout-cardinal") or texts.get("spellout-numbering") or next(iter(texts.values()), "")
    return " ".join(text.replace("-", " ").split())


def _number_words(numbers: RangeSlotList, language: str) -> TextSlotList:
    """A few numbers of the range, as people say them."""
    said = [number_words(int(v), language) for v in _sample_numbers(numbers) if v.is_integer()]
    return TextSlotList.from_strings([s for s in said if s], allow_template=False, name=numbers.name)


def _fits(context: dict[str, Any] | None, requires: dict[str, Any], excludes: dict[str, Any]) -> bool:
    """Whether a name with ``context`` may stand in a block that ``requires`` / ``excludes`` context."""
    mine = context or {}
    for key, wanted in requires.items():
        if key == "area" or key not in mine:
            continue
        allowed = {wanted} if isinstance(wanted, str) else set(wanted) if isinstance(wanted, list) else None
        if allowed is not None and mine[key] not in allowed:
            return False
    for key, unwanted in excludes.items():
        barred = {unwanted} if isinstance(unwanted, str) else set(unwanted) if isinstance(unwanted, list) else set()
        if mine.get(key) in barred:
            return False
    return True


def _names_for(names: SlotList | None, data: IntentData) -> SlotList | None:
    if not isinstance(names, TextSlotList) or not (data.requires_context or data.excludes_context):
        return names
    kept = [v for v in names.values if _fits(v.context, data.requires_context, data.excludes_context)]
    return TextSlotList(name=names.name, values=kept)


class _Walker:
    def __init__(self, lists: dict[str, SlotList], rules: dict[str, Sentence], rng: random.Random) -> None:
        self.lists, self.rules, self.rng = lists, rules, rng

    def walk(self, expression: Expression) -> str:
        if isinstance(expression, TextChunk):
            return expression.original_text
        if isinstance(expression, Alternative):
            return self.walk(self.rng.choice(expression.items))
        if isinstance(expression, Permutation):
            items = list(expression.items)
            self.rng.shuffle(items)
            return " ".join(self.walk(item) for item in items)
        if isinstance(expression, Sequence):
            return "".join(self.walk(item) for item in expression.items)
        if isinstance(expression, ListReference):
            values = self.lists.get(expression.list_name)
            if isinstance(values, TextSlotList) and values.values:
                # Each thing named equally often, however many ways it can be said (a merchant's aliases).
                by_thing: dict[str, list[TextSlotValue]] = {}
                for value in values.values:
                    by_thing.setdefault(repr(value.value_out), []).append(value)
                said = self.rng.choice(by_thing[self.rng.choice(sorted(by_thing))])
                return self.walk(said.text_in)
            raise _Unspeakable(expression.list_name)
        if isinstance(expression, RuleReference):
            return self.walk(self.rules[expression.rule_name].expression)
        raise _Unspeakable(type(expression).__name__)


def template_blocks(intents: Intents) -> list[tuple[IntentData, dict[str, Sentence]]]:
    """Every block of sentences of ``intents`` with the expansion rules it sees (the language's and its own)."""
    return [
        (data, {**intents.expansion_rules, **data.expansion_rules})
        for intent in intents.intents.values()
        for data in intent.data
    ]


def _templates(intents: Intents) -> Iterator[tuple[Sentence, IntentData, dict[str, Sentence]]]:
    for data, rules in template_blocks(intents):
        for sentence in data.sentences:
            yield sentence, data, rules


def expand_sentences(
    language: str, slots: Slots, limit: int = 5000, per_template: int = 12, seed: int = 0
) -> list[str]:
    """Up to ``limit`` distinct sentences the intents of ``language`` accept with ``slots``' names, lower-case,
    without digits or symbols (numbers in words), for a speech engine's grammar. At most ``per_template``
    samples are drawn from each template, round-robin over all templates until ``limit`` is reached."""
    language = normalize_language(language)
    intents = load_intents(language)
    rng = random.Random(seed)
    lists: dict[str, SlotList] = {**intents.slot_lists, **slot_lists(slots, language)}
    for name, values in list(lists.items()):
        if isinstance(values, RangeSlotList) and values.words:
            lists[name] = _number_words(values, language)
        elif isinstance(values, RangeSlotList | WildcardSlotList):
            del lists[name]  # digits only, or free text: nothing a grammar can hold
    walkers = []
    for sentence, data, rules in _templates(intents):
        local = dict(lists)
        for name, values in data.slot_lists.items():
            local[name] = _number_words(values, language) if isinstance(values, RangeSlotList) else values
        names = _names_for(local.get("name"), data)
        if names is not None:
            local["name"] = names
        walkers.append((sentence, _Walker(local, rules, rng)))
    seen: dict[str, None] = {}
    found = [0] * len(walkers)
    tries = [0] * len(walkers)
    live = list(range(len(walkers)))
    while live and len(seen) < limit:
        still = []
        for index in live:
            sentence, walker = walkers[index]
            tries[index] += 1
            try:
                text = _SPACES.sub(" ", walker.walk(sentence.expression)).strip().lower()
            except _Unspeakable:
                text = ""  # this walk took a branch no one can say (digits, free text): try another
            if text and _SPEAKABLE.match(text) and text not in seen:
                seen[text] = None
                found[index] += 1
                if len(seen) >= limit:
                    break
            if found[index] < per_template and tries[index] < per_template * 4:
                still.append(index)
        live = still
    return list(seen)
