"""Typed English and Chinese home-control sentences: ≥ 95 % exact (intent and slots), < 1 % false actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tosplus.services.voice.evaluate_text import evaluate_file, load_test_set

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["text_en.yaml", "text_zh.yaml", "text_en_fresh.yaml", "text_zh_fresh.yaml"])
def test_typed_requests_are_understood_exactly(name: str) -> None:
    test_set = load_test_set(DATA / name)
    assert len(test_set.cases) >= (40 if "fresh" in name else 150) and len(test_set.out_of_domain) >= 15
    report = evaluate_file(DATA / name)
    misses = [m.text for m in report.misses]
    assert report.exact_accuracy >= 0.95, misses
    assert report.false_action_rate < 0.01, misses
