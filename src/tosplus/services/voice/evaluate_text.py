"""How well typed requests are understood: exact accuracy (intent and slots) and the false-action rate.

A test set is a YAML file (see ``tests/services/voice/data/text_en.yaml``): the home (rooms, devices with their
kind and room, scenes, merchants), ``cases`` (``text``, ``intent``, ``slots``, optionally ``area``: the room
the request was spoken in) and ``out_of_domain`` sentences that must not be understood as anything. A case is
exact when the intent and every slot are right, no more and no fewer. An out-of-domain sentence that is given
any intent counts as a false action (the strictest reading: even a question would be answered wrongly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tosplus.services.voice.understanding import (
    DeviceName,
    MerchantName,
    SceneName,
    Slots,
    normalize_language,
    recognize,
)


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    intent: str | None  # None: out of domain
    slots: dict[str, Any]
    area: str | None = None


@dataclass(frozen=True, slots=True)
class TestSet:
    language: str
    slots: Slots
    cases: tuple[Case, ...]
    out_of_domain: tuple[Case, ...]


@dataclass(slots=True)
class Miss:
    text: str
    expected: dict[str, Any] | None
    got: dict[str, Any] | None


@dataclass(slots=True)
class TextReport:
    language: str
    cases: int = 0
    exact: int = 0
    intent_right: int = 0
    out_of_domain: int = 0
    false_actions: int = 0
    misses: list[Miss] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exact_accuracy(self) -> float:
        return self.exact / self.cases if self.cases else 0.0

    @property
    def intent_accuracy(self) -> float:
        return self.intent_right / self.cases if self.cases else 0.0

    @property
    def false_action_rate(self) -> float:
        return self.false_actions / self.out_of_domain if self.out_of_domain else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "cases": self.cases,
            "exact_accuracy": round(self.exact_accuracy, 4),
            "intent_accuracy": round(self.intent_accuracy, 4),
            "out_of_domain": self.out_of_domain,
            "false_action_rate": round(self.false_action_rate, 4),
            "ms_per_sentence": round(1000 * self.seconds / max(1, self.cases + self.out_of_domain), 2),
            "misses": [{"text": m.text, "expected": m.expected, "got": m.got} for m in self.misses],
        }


def home_slots_of(doc: dict[str, Any]) -> Slots:
    """``Slots`` for a test set's home (no hub needed)."""
    devices = tuple(
        DeviceName(f"dev{i}", d["name"], d.get("room"), d["kind"]) for i, d in enumerate(doc.get("devices", []))
    )
    scenes = tuple(SceneName(f"scene{i}", name) for i, name in enumerate(doc.get("scenes", [])))
    merchants = tuple(
        MerchantName(f"mch{i}", m["name"], m.get("currency", "CNY")) for i, m in enumerate(doc.get("merchants", []))
    )
    return Slots(home_id="test", rooms=tuple(doc.get("rooms", [])), devices=devices, scenes=scenes, merchants=merchants)


def load_test_set(path: Path) -> TestSet:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = tuple(Case(c["text"], c["intent"], dict(c.get("slots") or {}), c.get("area")) for c in doc["cases"])
    ood = tuple(Case(text, None, {}) for text in doc.get("out_of_domain", []))
    return TestSet(normalize_language(doc["language"]), home_slots_of(doc["home"]), cases, ood)


def same_slots(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    if expected.keys() != got.keys():
        return False
    for key, want in expected.items():
        have = got[key]
        if isinstance(want, str) and isinstance(have, str):
            if want.casefold() != have.casefold():
                return False
        elif isinstance(want, int | float) and isinstance(have, int | float):
            if abs(want - have) > 1e-9:
                return False
        elif want != have:
            return False
    return True


def evaluate(test_set: TestSet, progress: Callable[[int], None] | None = None) -> TextReport:
    """Recognise every sentence of ``test_set``; ``progress(n)`` is called after each."""
    report = TextReport(test_set.language)
    started = time.perf_counter()
    every: Iterable[Case] = (*test_set.cases, *test_set.out_of_domain)
    for done, case in enumerate(every, 1):
        result = recognize(case.text, test_set.language, test_set.slots, area=case.area)
        got = {"intent": result.intent, "slots": result.slots} if result else None
        if case.intent is None:
            report.out_of_domain += 1
            if result is not None:
                report.false_actions += 1
                report.misses.append(Miss(case.text, None, got))
        else:
            report.cases += 1
            expected = {"intent": case.intent, "slots": case.slots}
            if result is not None and result.intent == case.intent:
                report.intent_right += 1
                if same_slots(case.slots, result.slots):
                    report.exact += 1
                    continue
            report.misses.append(Miss(case.text, expected, got))
        if progress is not None:
            progress(done)
    report.seconds = time.perf_counter() - started
    return report


def evaluate_file(path: Path, progress: Callable[[int], None] | None = None) -> TextReport:
    return evaluate(load_test_set(path), progress)
