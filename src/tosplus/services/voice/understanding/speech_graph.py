"""The sentence templates themselves as a speech engine's grammar: every sentence they accept, none listed.

Sampling sentences from the templates (:mod:`.grammar`) misses phrasings people use ("turn on the living room
light" was not among 20,000 samples), and a recogniser with a grammar rejects whatever it was not given. Here
the parsed templates (sequences, alternatives, optionals, permutations, rules, lists with the home's names and
number ranges in words) are compiled into one automaton over words, then made deterministic and minimal
(:class:`~tosplus.services.voice.stt.wordgraph.WordGraph`): the grammar holds every sentence the templates
allow, in a graph a few thousand arcs large.

Templates are written in characters, not words ("light[s]" is "light" or "lights"), so they are first compiled
into an automaton over pieces of text and spaces; the words are then read off it between spaces. Words come
out as :func:`tosplus.services.voice.stt.text.normalize` writes them (lowercase, numbers in words, punctuation
dropped), which is what the recogniser answers and what :func:`.recognize` matches. A piece with digits or
symbols (``{name}`` "Samsung 55", "50%") leads nowhere: no one says a digit, and the same sentence with the
number in words is there when the templates accept it. Hassil's skip words ("please", "can you") may open or
close a sentence that does not already open with one.
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections.abc import Sequence as Seq
from typing import Final

from hassil import RangeSlotList, SlotList, TextSlotList, WildcardSlotList
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
from hassil.intents import RangeFractionType
from hassil.util import PUNCTUATION_STR

from tosplus.services.voice.stt.text import normalize
from tosplus.services.voice.stt.wordgraph import WordAutomaton, WordGraph
from tosplus.services.voice.understanding.grammar import _names_for, number_words, template_blocks
from tosplus.services.voice.understanding.loader import load_intents, normalize_language
from tosplus.services.voice.understanding.slots import Slots, slot_lists

__all__ = ["number_words", "template_graph"]

_SPACE: Final = " "  # a word boundary in the piece automaton (pieces never contain one)
_BREAKS: Final = frozenset(PUNCTUATION_STR) | {"-", "_"}  # read as a word boundary, as normalize() does
# Skip words people put at the end of a request, and those that never open one (the others only open one).
_CLOSING: Final = {"en": frozenset({"please", "for me"})}
_NOT_OPENING: Final = {"en": frozenset({"for me"})}
_MAX_PERMUTED: Final = 5  # items of a permutation expanded in every order (5! = 120 orders)


class _Pieces:
    """An automaton over pieces of words and spaces (``None``: an empty transition)."""

    def __init__(self) -> None:
        self.arcs: list[list[tuple[str | None, int]]] = [[]]

    def state(self) -> int:
        self.arcs.append([])
        return len(self.arcs) - 1

    def arc(self, source: int, target: int, piece: str | None) -> None:
        self.arcs[source].append((piece, target))

    def text(self, source: int, text: str) -> int | None:
        """A chain saying ``text`` from ``source``; its end, or None when it holds a digit or symbol."""
        tokens: list[str] = []
        word = ""
        for c in unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'"):
            if c.isalpha() or c == "'":
                word += c
                continue
            if not (c.isspace() or c in _BREAKS):
                return None  # a digit or a symbol: not something said
            if word:
                tokens.append(word)
            tokens.append(_SPACE)
            word = ""
        if word:
            tokens.append(word)
        state = source
        for token in tokens:
            nxt = self.state()
            self.arc(state, nxt, token)
            state = nxt
        return state

    def words(self, start: int, end: int) -> WordAutomaton:
        """The same language over whole words: from each state after a space, every way to the next space."""
        out = WordAutomaton()
        final = out.state()
        out.finals.add(final)
        number = {start: out.start}
        queue = [start]
        for boundary in queue:
            stack: list[tuple[int, str]] = [(boundary, "")]
            seen: set[tuple[int, str]] = set()
            while stack:
                state, word = stack.pop()
                if (state, word) in seen:
                    continue
                seen.add((state, word))
                targets: list[int] = [final] if state == end else []
                for piece, target in self.arcs[state]:
                    if piece is None:
                        stack.append((target, word))
                    elif piece != _SPACE:
                        stack.append((target, word + piece))
                    else:
                        if target not in number:
                            number[target] = out.state()
                            queue.append(target)
                        targets.append(number[target])
                if word.startswith("'"):
                    continue  # "'d" after an optional "[I]": not a word anyone says alone
                said = word.rstrip("'") or None
                for target in targets:
                    out.arc(number[boundary], target, said)
        return out


class _Compiler:
    """Compiles templates into one piece automaton; lists and number ranges go in as small minimal graphs."""

    def __init__(self, pieces: _Pieces, language: str) -> None:
        self.pieces = pieces
        self.language = language
        self._lists: dict[int, tuple[SlotList, WordGraph]] = {}

    def add(
        self, expression: Expression, start: int, lists: dict[str, SlotList], rules: dict[str, Sentence]
    ) -> int | None:
        """Compile ``expression`` from state ``start``: its end state, or None when nothing of it can be said."""
        p = self.pieces
        if isinstance(expression, TextChunk):
            return p.text(start, expression.original_text or expression.text)
        if isinstance(expression, Alternative):
            end = p.state()
            reached = expression.is_optional
            for item in expression.items:
                item_end = self.add(item, start, lists, rules)
                if item_end is not None:
                    p.arc(item_end, end, None)
                    reached = True
            if expression.is_optional:
                p.arc(start, end, None)
            return end if reached else None
        if isinstance(expression, Permutation):
            return self._permutation(expression.items, start, lists, rules)
        if isinstance(expression, Sequence):
            state: int | None = start
            for item in expression.items:
                if state is None:
                    return None
                state = self.add(item, state, lists, rules)
            return state
        if isinstance(expression, RuleReference):
            rule = rules.get(expression.rule_name)
            return None if rule is None else self.add(rule.expression, start, lists, rules)
        if isinstance(expression, ListReference):
            graph = self._list_graph(expression, lists, rules)
            return None if graph is None else self._embed(graph, start)
        return None

    def _permutation(
        self, items: Seq[Expression], start: int, lists: dict[str, SlotList], rules: dict[str, Sentence]
    ) -> int | None:
        p = self.pieces
        end = p.state()
        reached = False
        orders = itertools.permutations(items) if len(items) <= _MAX_PERMUTED else iter([tuple(items)])
        for order in orders:
            state: int | None = start
            for i, item in enumerate(order):
                if state is None:
                    break
                if i:
                    state = p.text(state, " ")
                state = self.add(item, state, lists, rules) if state is not None else None
            if state is not None:
                p.arc(state, end, None)
                reached = True
        return end if reached else None

    def _list_graph(
        self, ref: ListReference, lists: dict[str, SlotList], rules: dict[str, Sentence]
    ) -> WordGraph | None:
        if ref.is_inline_range:
            bounds = ref.get_inline_range()
            assert bounds is not None
            return number_graph(bounds[0], bounds[1], bounds[2], None, self.language)
        values = lists.get(ref.list_name)
        if isinstance(values, RangeSlotList):
            if not values.words:
                return None  # digits only
            fractions = values.fraction_type.value if values.fraction_type else None
            return number_graph(values.start, values.stop, values.step, fractions, self.language)
        if not isinstance(values, TextSlotList) or isinstance(values, WildcardSlotList) or not values.values:
            return None
        hit = self._lists.get(id(values))
        if hit is None:
            pieces = _Pieces()
            inner = _Compiler(pieces, self.language)
            end = pieces.state()
            for value in values.values:
                value_end = inner.add(value.text_in, 0, lists, rules)
                if value_end is not None:
                    pieces.arc(value_end, end, None)
            hit = self._lists[id(values)] = (values, pieces.words(0, end).graph())  # the list kept: ids stay unique
        graph = hit[1]
        return graph if graph.finals else None

    def _embed(self, graph: WordGraph, start: int) -> int:
        """A copy of ``graph`` from ``start``, a space before every word but the first; its end state."""
        p = self.pieces
        states = [start] + [p.state() for _ in range(graph.states - 1)]
        end = p.state()
        for source, target, word in graph.arcs:
            state = states[source]
            if source != 0:
                spaced = p.state()
                p.arc(state, spaced, _SPACE)
                state = spaced
            p.arc(state, states[target], word)
        for final in graph.finals:
            p.arc(states[final], end, None)
        return end


@functools.cache
def number_graph(start: int, stop: int, step: int, fractions: str | None, language: str) -> WordGraph:
    """The numbers of a range in words, as a minimal graph (0..100 in 30-odd arcs); with ``fractions`` (hassil's
    "halves" or "tenths") also "twenty one point five", as normalize() writes 21.5."""
    said: list[str] = []
    tenths = [round(f * 10) for f in RangeFractionType.get_fractions(RangeFractionType(fractions))] if fractions else []
    for n in range(start, stop + 1, max(1, step)):
        whole = number_words(n, language)
        said.append(whole)
        said.extend(f"{whole} point {number_words(t, language)}" for t in tenths)
    return WordGraph.of_sentences(s.split() for s in said)


def template_graph(language: str, slots: Slots) -> WordGraph:
    """Every sentence the intents of ``language`` accept with ``slots``' names, as a minimal word graph."""
    language = normalize_language(language)
    intents = load_intents(language)
    lists: dict[str, SlotList] = {**intents.slot_lists, **slot_lists(slots, language)}
    pieces = _Pieces()
    compiler = _Compiler(pieces, language)
    end = pieces.state()
    for data, rules in template_blocks(intents):
        local = dict(lists)
        local.update(data.slot_lists)
        names = _names_for(local.get("name"), data)
        if names is not None:
            local["name"] = names
        for sentence in data.sentences:
            sentence_end = compiler.add(sentence.expression, 0, local, rules)
            if sentence_end is not None:
                pieces.arc(sentence_end, end, None)
    skips = {normalize(s) for s in intents.skip_words} - {""}
    closing = _CLOSING.get(language, frozenset(skips)) & skips
    opening = skips - _NOT_OPENING.get(language, frozenset())
    return _with_skip_words(pieces.words(0, end).graph(), sorted(opening), sorted(closing))


def _with_skip_words(body: WordGraph, opening: Seq[str], closing: Seq[str]) -> WordGraph:
    """``body``, and its sentences opened or closed by one skip word ("please turn on the light", "turn on the
    light for me"). Sentences that already open with one ("i want twenty degrees in the kitchen") get none:
    the understanding side drops every skip word once one is added, and would then miss the sentence."""
    phrases = sorted({tuple(s.split()) for s in (*opening, *closing)})
    if not phrases:
        return body
    plain = _not_opening_with(body, phrases)
    out = WordAutomaton()
    final = out.state()
    out.finals.add(final)
    after_skip, before_skip = out.state(), out.state()
    _copy(out, body, 0, final)
    _copy(out, plain, after_skip, final)
    _copy(out, plain, 0, before_skip)
    for text, source, target in [*((s, 0, after_skip) for s in opening), *((s, before_skip, final) for s in closing)]:
        phrase = text.split()
        state = source
        for word in phrase[:-1]:
            nxt = out.state()
            out.arc(state, nxt, word)
            state = nxt
        out.arc(state, target, phrase[-1])
    return out.graph()


def _not_opening_with(graph: WordGraph, phrases: Seq[tuple[str, ...]]) -> WordGraph:
    """The sentences of ``graph`` that do not start with one of ``phrases`` (a product with the phrases' trie)."""
    trie: list[dict[str, int]] = [{}]
    ends: set[int] = set()
    for phrase in phrases:
        node = 0
        for word in phrase:
            if word not in trie[node]:
                trie[node][word] = len(trie)
                trie.append({})
            node = trie[node][word]
        ends.add(node)
    free = -1  # past any phrase
    number: dict[tuple[int, int], int] = {(0, 0): 0}
    queue = [(0, 0)]
    children: list[dict[str, int]] = [{}]
    finals: set[int] = set()
    out = graph.successors
    for state, node in queue:
        me = number[(state, node)]
        if state in graph.finals:
            finals.add(me)
        for word, target in out(state).items():
            inner = free if node == free else trie[node].get(word, free)
            if inner in ends:
                continue  # a skip word opens this sentence
            key = (target, inner)
            if key not in number:
                number[key] = len(children)
                children.append({})
                queue.append(key)
            children[me][word] = number[key]
    return WordGraph.minimal(children, finals)


def _copy(out: WordAutomaton, graph: WordGraph, start: int, end: int) -> None:
    states = [start] + [out.state() for _ in range(graph.states - 1)]
    for source, target, word in graph.arcs:
        out.arc(states[source], states[target], word)
    for final in graph.finals:
        out.arc(states[final], end, None)
