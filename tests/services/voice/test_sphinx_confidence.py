"""The default engine's confidence: a grammar path measured against a free phone loop and free English."""

from __future__ import annotations

import shutil

import pytest

from tosplus.services.voice.cli import BUILT_IN_HOME, _load_home
from tosplus.services.voice.stt import Grammar
from tosplus.services.voice.stt.sphinx import DEFAULT_THRESHOLD, SphinxEngine
from tosplus.services.voice.stt.sphinx_confidence import Measures, combined, measures
from tosplus.services.voice.tts import EspeakTTS
from tosplus.services.voice.understanding.speech_graph import template_graph

PHONES = [("SIL", 0, 9, -100.0), ("T", 10, 14, -50.0), ("ER", 15, 24, -100.0), ("N", 25, 29, -50.0)]


def test_a_path_as_good_as_the_phone_loop_loses_nothing() -> None:
    path = [("<sil>", 0, 9, -100.0), ("turn", 10, 29, -200.0)]
    found = measures(path, PHONES, 5.0, 30, 20)
    assert found == Measures(5.0, 0.0, 0.0)
    assert found.score == combined(5.0, 0.0, 0.0) == 10.0


def test_words_that_fit_worse_than_the_phones_lower_every_measure() -> None:
    path = [("<sil>", 0, 9, -100.0), ("(NULL)", 9, 9, 0.0), ("turn", 10, 29, -600.0)]
    found = measures(path, PHONES, 5.0, 30, 20)
    assert found is not None
    assert found.acoustic == pytest.approx(-400.0 / 20)  # per frame of speech
    assert found.words == pytest.approx(-400.0 / 20)  # silence and null transitions are not words
    better = measures([("<sil>", 0, 9, -100.0), ("turn", 10, 29, -200.0)], PHONES, 5.0, 30, 20)
    assert better is not None and found.score < better.score


def test_no_path_no_measure() -> None:
    assert measures([], PHONES, 5.0, 30, 20) is None
    assert measures([("turn", 0, 29, -1.0)], [], 5.0, 30, 20) is None


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
async def test_commands_of_a_template_grammar_are_accepted_and_others_rejected() -> None:
    grammar = Grammar.of_graph(template_graph("en", _load_home(BUILT_IN_HOME)))  # its names, not its commands
    engine = SphinxEngine(streams=1)
    tts = EspeakTTS()
    heard = await engine.transcribe((await tts.synthesize("turn on the kitchen lights")).audio, grammar=grammar)
    assert heard.text == "turn on the kitchen lights" and heard.confidence > 0.5
    assert heard.score is not None and heard.score >= DEFAULT_THRESHOLD
    for text in ("order a large pizza", "what is the weather like tomorrow"):
        heard = await engine.transcribe((await tts.synthesize(text, language="en-us")).audio, grammar=grammar)
        assert heard.text == "" and heard.confidence < 0.5, (text, heard)
