"""Word graphs: the finite-state grammar a decoder searches.

:class:`WordGraph` is a minimal deterministic acyclic automaton over words. It is built either from sentences
(:meth:`WordGraph.of_sentences`) or from any acyclic automaton with empty transitions
(:class:`WordAutomaton`, which the understanding side fills straight from its sentence templates), so a grammar
holds every sentence its templates allow without anyone listing them. :meth:`WordGraph.fsg` gives it in the
form pocketsphinx wants: one start state, one final state, probabilities on the arcs.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["Transition", "WordAutomaton", "WordGraph", "postorder", "word_graph"]

Transition = tuple[int, int, float, str | None]
Arc = tuple[int, int, str]  # (from, to, word)


class WordAutomaton:
    """An acyclic automaton over words with empty transitions, built state by state (no loops allowed).

    ``arc(a, b, None)`` is an empty transition. :meth:`graph` turns it into the minimal equivalent
    :class:`WordGraph` (subset construction, then equal states merged).
    """

    def __init__(self) -> None:
        self.arcs: list[list[tuple[str | None, int]]] = [[]]
        self.finals: set[int] = set()
        self.start = 0

    def state(self) -> int:
        self.arcs.append([])
        return len(self.arcs) - 1

    def arc(self, source: int, target: int, word: str | None) -> None:
        self.arcs[source].append((word, target))

    def graph(self) -> WordGraph:
        closures: dict[int, frozenset[int]] = {}

        def closure(state: int) -> frozenset[int]:
            hit = closures.get(state)
            if hit is not None:
                return hit
            seen = {state}
            stack = [state]
            while stack:
                for word, target in self.arcs[stack.pop()]:
                    if word is None and target not in seen:
                        seen.add(target)
                        stack.append(target)
            closures[state] = frozenset(seen)
            return closures[state]

        first = closure(self.start)
        ids: dict[frozenset[int], int] = {first: 0}
        todo = [first]
        arcs: list[dict[str, int]] = [{}]
        finals: set[int] = set()
        while todo:
            subset = todo.pop()
            me = ids[subset]
            if subset & self.finals:
                finals.add(me)
            moves: dict[str, set[int]] = {}
            for state in subset:
                for word, target in self.arcs[state]:
                    if word is not None:
                        moves.setdefault(word, set()).update(closure(target))
            for word, targets in moves.items():
                key = frozenset(targets)
                other = ids.get(key)
                if other is None:
                    other = ids[key] = len(arcs)
                    arcs.append({})
                    todo.append(key)
                arcs[me][word] = other
        return WordGraph.minimal(arcs, finals)


@dataclass(frozen=True)
class WordGraph:
    """A minimal deterministic acyclic word graph: state 0 starts, ``finals`` end a sentence.

    ``key`` is a digest of the graph's content (equal languages give equal keys, whatever built them).
    """

    arcs: tuple[Arc, ...]
    finals: frozenset[int]
    states: int
    key: str = field(init=False, compare=False)
    _out: tuple[dict[str, int], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        out: list[dict[str, int]] = [{} for _ in range(self.states)]
        for source, target, word in self.arcs:
            out[source][word] = target
        object.__setattr__(self, "_out", tuple(out))
        text = "\n".join(f"{a} {b} {w}" for a, b, w in self.arcs) + "\nF " + " ".join(map(str, sorted(self.finals)))
        object.__setattr__(self, "key", hashlib.sha256(text.encode()).hexdigest()[:32])

    @classmethod
    def of_sentences(cls, sentences: Iterable[Sequence[str]]) -> WordGraph:
        """The graph accepting exactly ``sentences`` (each a list of words)."""
        children: list[dict[str, int]] = [{}]
        ends: set[int] = set()
        for words in sentences:
            node = 0
            for w in words:
                nxt = children[node].get(w)
                if nxt is None:
                    nxt = children[node][w] = len(children)
                    children.append({})
                node = nxt
            ends.add(node)
        return cls.minimal(children, ends)

    @classmethod
    def minimal(cls, children: list[dict[str, int]], ends: set[int]) -> WordGraph:
        """The minimal graph of a deterministic acyclic one (state 0 starts): states with the same finality and
        the same arcs to the same merged states are merged, bottom-up; states that end no sentence are dropped."""
        canon: dict[tuple[bool, tuple[tuple[str, int], ...]], int] = {}
        rep = [-1] * len(children)
        for node in postorder(children):
            arcs = tuple(sorted((w, rep[c]) for w, c in children[node].items() if rep[c] >= 0))
            if not arcs and node not in ends:
                continue  # a dead end: nothing can be said from here
            rep[node] = canon.setdefault((node in ends, arcs), len(canon))
        if rep[0] < 0:
            return cls((), frozenset(), 1)
        # renumber from the start, breadth first, so the start state is 0
        classes = {state: sig for sig, state in canon.items()}
        number = {rep[0]: 0}
        queue = [rep[0]]
        out: list[Arc] = []
        finals: set[int] = set()
        for state in queue:
            is_end, arcs = classes[state]
            if is_end:
                finals.add(number[state])
            for word, target in arcs:
                if target not in number:
                    number[target] = len(number)
                    queue.append(target)
                out.append((number[state], number[target], word))
        return cls(tuple(out), frozenset(finals), len(number))

    def __len__(self) -> int:
        """Arcs (the size that matters to a decoder)."""
        return len(self.arcs)

    def successors(self, state: int) -> dict[str, int]:
        """The arcs out of ``state``: word -> next state (do not change the dictionary)."""
        return self._out[state]

    @property
    def vocabulary(self) -> frozenset[str]:
        return frozenset(w for _, _, w in self.arcs)

    def accepts(self, words: Sequence[str]) -> bool:
        state = 0
        for w in words:
            nxt = self._out[state].get(w) if self.states else None
            if nxt is None:
                return False
            state = nxt
        return state in self.finals

    def without(self, words: Iterable[str]) -> WordGraph:
        """The graph with every sentence that uses one of ``words`` left out."""
        barred = set(words)
        if not barred & self.vocabulary:
            return self
        children = [{w: t for w, t in arcs.items() if w not in barred} for arcs in self._out]
        return WordGraph.minimal(children, set(self.finals))

    def sample(self, count: int, *, seed: int = 0) -> list[str]:
        """Up to ``count`` distinct sentences of the graph, each a random path (deterministic by seed)."""
        rng = random.Random(seed)
        found: dict[str, None] = {}
        for _ in range(count * 3):
            if len(found) >= count or not self.finals:
                break
            state, words = 0, []
            while True:
                choices = sorted(self._out[state].items())
                stop = state in self.finals
                if not choices or (stop and rng.random() < 1 / (len(choices) + 1)):
                    break
                word, state = rng.choice(choices)
                words.append(word)
            found.setdefault(" ".join(words))
        return list(found)

    def fsg(self) -> tuple[list[Transition], int, int]:
        """(transitions, start, final) for pocketsphinx: every state that ends a sentence gets an empty
        transition to one final state of its own; arcs out of a state share its probability mass evenly."""
        final = self.states
        transitions: list[Transition] = []
        for state, arcs in enumerate(self._out):
            share = self._share(state)
            transitions.extend((state, target, share, w) for w, target in sorted(arcs.items()))
            if state in self.finals:
                transitions.append((state, final, share, None))
        return transitions, 0, final

    def _share(self, state: int) -> float:
        """The probability of each way out of ``state`` (its arcs, and ending there when it may)."""
        return 1.0 / (len(self._out[state]) + (1 if state in self.finals else 0))

    def fsg_of(self, sentences: Iterable[Sequence[str]]) -> tuple[list[Transition], int, int]:
        """:meth:`fsg` with only the paths of ``sentences`` (each must be accepted), every transition weighted as
        in the whole graph: the decoder then chooses among these sentences as the whole grammar would score them,
        which tells a search that lost the right sentence from an acoustic model that prefers another."""
        final = self.states
        chosen: dict[tuple[int, int, str | None], float] = {}
        for words in sentences:
            if not self.accepts(words):
                raise ValueError(f"not a sentence of the graph: {' '.join(words)!r}")
            state = 0
            for w in [*words, None]:
                target = self._out[state][w] if w is not None else final
                chosen[(state, target, w)] = self._share(state)
                state = target
        return [(a, b, p, w) for (a, b, w), p in chosen.items()], 0, final


def word_graph(sentences: list[list[str]]) -> tuple[list[Transition], int, int]:
    """A minimal acyclic word graph accepting exactly ``sentences``: (transitions, start state, final state)."""
    return WordGraph.of_sentences(sentences).fsg()


def postorder(children: list[dict[str, int]]) -> list[int]:
    """The states reachable from state 0, each after every state it leads to (the graph must be acyclic)."""
    out: list[int] = []
    done: set[int] = set()
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            out.append(node)
            continue
        if node in done:
            continue
        done.add(node)
        stack.append((node, True))
        stack.extend((c, False) for c in children[node].values() if c not in done)
    return out
