"""From transcripts to actions: did what the engine heard make the home do what the person asked?

Speech-to-text figures (:mod:`.evaluate_audio`) say how close the words were; this module says what a person
gets. Each reference transcript and each heard transcript is understood with the home's names
(:func:`~.understanding.recognize`), and the two understandings are compared:

- a command is **executed exactly right** when the heard text gives the same intent with the same slots as the
  reference (a wrong word that does not change the meaning is no harm; a right-looking transcript that
  loses a slot is);
- the **intent** is right when the intent matches, whatever the slots;
- an **out-of-domain** utterance (empty reference) that gives any intent is a **false action**;
- a reference the understanding itself does not accept is counted apart (``unparsed_references``): the test
  set asks for something the home cannot do, which says nothing about the engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .evaluate_audio import Result
from .evaluate_text import same_slots
from .understanding import Slots, recognize

__all__ = ["IntentReport", "Outcome", "score_intents"]


@dataclass(frozen=True, slots=True)
class Outcome:
    id: str
    expected: dict[str, Any] | None  # what the reference means (None: out of domain, or not understood)
    got: dict[str, Any] | None  # what the heard text means
    in_domain: bool

    @property
    def exact(self) -> bool:
        return (
            self.expected is not None
            and self.got is not None
            and self.expected["intent"] == self.got["intent"]
            and same_slots(self.expected["slots"], self.got["slots"])
        )


@dataclass
class IntentReport:
    outcomes: list[Outcome] = field(default_factory=list)
    unparsed_references: list[str] = field(default_factory=list)  # ids of in-domain references not understood

    @property
    def commands(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.in_domain and o.expected is not None]

    @property
    def executed_exactly(self) -> float:
        cmds = self.commands
        return sum(o.exact for o in cmds) / len(cmds) if cmds else math.nan

    @property
    def intent_accuracy(self) -> float:
        cmds = self.commands
        right = sum(1 for o in cmds if o.got is not None and o.expected and o.got["intent"] == o.expected["intent"])
        return right / len(cmds) if cmds else math.nan

    @property
    def wrong_actions(self) -> int:
        """Commands that did something other than what was asked (a rejection is not a wrong action)."""
        return sum(1 for o in self.commands if o.got is not None and not o.exact)

    @property
    def false_actions(self) -> int:
        return sum(1 for o in self.outcomes if not o.in_domain and o.got is not None)

    @property
    def out_of_domain(self) -> int:
        return sum(1 for o in self.outcomes if not o.in_domain)

    def summary(self) -> dict[str, Any]:
        return {
            "commands_understood": len(self.commands),
            "unparsed_references": len(self.unparsed_references),
            "executed_exactly": self.executed_exactly,
            "intent_accuracy": self.intent_accuracy,
            "wrong_actions": self.wrong_actions,
            "false_actions": self.false_actions,
            "false_action_rate": self.false_actions / self.out_of_domain if self.out_of_domain else math.nan,
        }


def _meaning(text: str, language: str, slots: Slots) -> dict[str, Any] | None:
    if not text.strip():
        return None
    found = recognize(text, language, slots)
    return {"intent": found.intent, "slots": found.slots} if found else None


def same_meaning(expected: str, heard: str, language: str, slots: Slots) -> bool:
    """Whether ``heard`` means what ``expected`` means (intent and every slot) with ``slots``."""
    return Outcome("", _meaning(expected, language, slots), _meaning(heard, language, slots), True).exact


def score_intents(results: Iterable[Result], language: str, slots: Slots) -> IntentReport:
    """Understand every reference and every transcript with ``slots`` and compare them."""
    report = IntentReport()
    for r in results:
        in_domain = bool(r.expected)
        expected = _meaning(r.expected, language, slots) if in_domain else None
        if in_domain and expected is None:
            report.unparsed_references.append(r.id)
        report.outcomes.append(Outcome(r.id, expected, _meaning(r.heard, language, slots), in_domain))
    return report
