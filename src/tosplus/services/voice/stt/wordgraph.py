"""Sentences as a minimal word graph: the finite-state grammar a decoder searches."""

from __future__ import annotations

__all__ = ["Transition", "postorder", "word_graph"]

Transition = tuple[int, int, float, str | None]


def word_graph(sentences: list[list[str]]) -> tuple[list[Transition], int, int]:
    """A minimal acyclic word graph accepting exactly ``sentences``: (transitions, start state, final state).

    A trie is built and its equivalent states merged bottom-up (same finality, same arcs to the same merged
    states). Every state that ends a sentence gets an empty transition to the single final state pocketsphinx
    wants. Arcs out of a state share its probability mass evenly.
    """
    children: list[dict[str, int]] = [{}]
    ends = [False]
    for words in sentences:
        node = 0
        for w in words:
            nxt = children[node].get(w)
            if nxt is None:
                nxt = len(children)
                children.append({})
                ends.append(False)
                children[node][w] = nxt
            node = nxt
        ends[node] = True

    canon: dict[tuple[bool, tuple[tuple[str, int], ...]], int] = {}
    rep = [0] * len(children)
    order = postorder(children)
    for node in order:
        sig = (ends[node], tuple(sorted((w, rep[c]) for w, c in children[node].items())))
        rep[node] = canon.setdefault(sig, len(canon))
    # number the merged states: the root's class first
    final = len(canon)
    transitions: list[Transition] = []
    for sig, state in canon.items():
        is_end, arcs = sig
        n = len(arcs) + (1 if is_end else 0)
        for w, target in arcs:
            transitions.append((state, target, 1.0 / n, w))
        if is_end:
            transitions.append((state, final, 1.0 / n, None))
    return transitions, rep[0], final


def postorder(children: list[dict[str, int]]) -> list[int]:
    out: list[int] = []
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:
        node, done = stack.pop()
        if done:
            out.append(node)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children[node].values())
    return out
