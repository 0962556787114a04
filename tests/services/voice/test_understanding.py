"""Understanding without a hub: recognition against a home's names, the grammar for speech engines, limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tosplus.services.voice.evaluate_text import load_test_set
from tosplus.services.voice.understanding import (
    DeviceName,
    MerchantName,
    SceneName,
    Slots,
    detect_language,
    expand_sentences,
    normalize_language,
    recognize,
)
from tosplus.services.voice.understanding.loader import intents_dict

DATA = Path(__file__).parent / "data"

HOME = Slots(
    home_id="h",
    rooms=("Living room", "Kitchen", "客厅"),
    devices=(
        DeviceName("d1", "Ceiling light", "Living room", "light"),
        DeviceName("d2", "Samsung", "Living room", "tv"),
        DeviceName("d3", "Echo", "Kitchen", "speaker"),
        DeviceName("d4", "吸顶灯", "客厅", "light"),
    ),
    scenes=(SceneName("s1", "Movie night"),),
    merchants=(MerchantName("m1", "Corner Coffee", "CNY"),),
)


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("Turn on the living room light.", "HassTurnOn", {"area": "Living room", "domain": "light"}),
        (
            "pay thirty yuan to the coffee shop",
            "TosPay",
            {"amount": 30, "currency": "CNY", "merchant": "Corner Coffee"},
        ),
        (
            "pay nine point nine yuan to corner coffee",  # a price read aloud: cents digit by digit after "point"
            "TosPay",
            {"amount": 9, "cents": 90, "currency": "CNY", "merchant": "Corner Coffee"},
        ),
        (
            "pay 9.9 yuan to corner coffee",
            "TosPay",
            {"amount": 9, "cents": 90, "currency": "CNY", "merchant": "Corner Coffee"},
        ),
        (
            "send twelve point zero five dollars to corner coffee",
            "TosPay",
            {"amount": 12, "cents": 5, "currency": "USD", "merchant": "Corner Coffee"},
        ),
        ("play channel five on the TV", "TosSetChannel", {"channel": 5, "name": "TV"}),
        ("run movie night", "TosRunScene", {"scene": "Movie night"}),
        ("what is the temperature in the kitchen", "HassClimateGetTemperature", {"area": "Kitchen"}),
        ("打开客厅的灯", "HassTurnOn", {"area": "客厅", "domain": "light"}),
        ("把吸顶灯关了。", "HassTurnOff", {"name": "吸顶灯"}),
    ],
)
def test_sentences_are_understood_with_the_homes_names(text: str, intent: str, slots: dict[str, object]) -> None:
    found = recognize(text, None, HOME)
    assert found is not None and (found.intent, found.slots) == (intent, slots)


def test_what_is_not_ours_or_not_in_the_home_is_not_understood() -> None:
    for text in ("order a pizza", "turn on the bedroom light", "pay thirty yuan", "play some jazz", "帮我订个外卖"):
        assert recognize(text, None, HOME) is None, text
    assert recognize("turn on the lights", "en", HOME) is None  # which room? none said, none spoken in
    spoken_in = recognize("turn on the lights", "en", HOME, area="Kitchen")
    assert spoken_in is not None and spoken_in.slots == {"area": "Kitchen", "domain": "light"}
    assert recognize("allume la lumière", "fr", HOME) is None


def test_languages() -> None:
    assert detect_language("打开客厅的灯") == "zh-cn" and detect_language("turn it on") == "en"
    assert [normalize_language(c) for c in ("zh-CN", "zh_Hans", "zh", "en-US", None)] == ["zh-cn"] * 3 + ["en"] * 2


def test_our_templates_win_and_homes_intents_are_narrowed() -> None:
    doc = intents_dict("en")
    assert "HassVacuumStart" not in doc["intents"] and "HassBroadcast" not in doc["intents"]
    for intent in doc["intents"].values():
        for block in intent["data"]:
            assert "{floor" not in " ".join(block["sentences"])
            assert "{timer_name" not in " ".join(block["sentences"])  # wildcards would swallow anything


def test_number_words_of_equal_ranges_do_not_leak_into_each_other() -> None:
    """hassil caches range words without their multiplier: a volume step down said first must not make
    brightness negative."""
    down = recognize("kitchen volume down twenty", "en", HOME)
    bright = recognize("set the living room lights to twenty percent", "en", HOME)
    assert down is not None and down.slots == {"area": "Kitchen", "volume_step": -20}
    assert bright is not None and bright.slots["brightness"] == 20


def test_recognition_is_fast_once_loaded() -> None:
    recognize("turn on the living room light", "en", HOME)
    started = time.perf_counter()
    for _ in range(20):
        assert recognize("set the living room lights to fifty percent", "en", HOME) is not None
    assert (time.perf_counter() - started) / 20 < 0.05


def test_grammar_sentences_are_bounded_speakable_and_understood() -> None:
    for name in ("text_en.yaml", "text_zh.yaml"):
        test_set = load_test_set(DATA / name)
        sentences = expand_sentences(test_set.language, test_set.slots, limit=1500)
        assert 1000 <= len(sentences) <= 1500 and len(set(sentences)) == len(sentences)
        assert not any(ch.isdigit() for s in sentences for ch in s)
        assert expand_sentences(test_set.language, test_set.slots, limit=1500) == sentences  # seeded
        room = test_set.slots.rooms[0]
        for sentence in sentences[::10]:
            assert recognize(sentence, test_set.language, test_set.slots, area=room) is not None, sentence
    small = expand_sentences("en", HOME, limit=200)
    assert len(small) == 200 and any("corner coffee" in s for s in expand_sentences("en", HOME, limit=3000))
