"""``tosplus voice synth`` and ``tosplus voice eval``: a set written to a folder, measured like a recording."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tosplus.__main__ import app

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

HOME = {
    "rooms": ["Living room", "Kitchen"],
    "devices": [
        {"name": "Ceiling light", "room": "Living room", "kind": "light"},
        {"name": "Kettle", "room": "Kitchen", "kind": "plug"},
    ],
    "scenes": [],
    "merchants": [],
    "commands": ["turn off the kitchen light", "turn on the kettle"],
}
runner = CliRunner()


def _words(output: str) -> str:
    """The output's words, without the error box's frame and line breaks."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def test_a_synthesised_set_is_written_and_measured_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "home.yaml"
    home.write_text(yaml.safe_dump(HOME), encoding="utf-8")
    folder = tmp_path / "set"
    made = runner.invoke(
        app, ["voice", "synth", str(folder), "--home", str(home), "--voices", "en-us", "--noise", "none", "--ood"]
    )
    assert made.exit_code == 0, made.output
    transcripts = sorted(p.read_text(encoding="utf-8").strip() for p in folder.glob("*.txt"))
    assert [t for t in transcripts if t] == sorted(HOME["commands"])
    assert transcripts.count("") == 30  # the built-in out-of-domain requests, one voice
    assert len(list(folder.glob("*.wav"))) == 32 and (folder / "home.yaml").exists()

    # Two folders: the commands, and the out-of-domain requests the default engine must never act on.
    only_ood = tmp_path / "ood"
    only_ood.mkdir()
    for txt in list(folder.glob("*.txt")):
        if not txt.read_text(encoding="utf-8").strip():
            txt.rename(only_ood / txt.name)
            txt.with_suffix(".wav").rename(only_ood / txt.with_suffix(".wav").name)
    shutil.copy(home, only_ood / "home.yaml")
    out = tmp_path / "figures.json"
    measured = runner.invoke(app, ["voice", "eval", str(folder), "--json", str(out)])
    assert measured.exit_code == 0, measured.output
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert figures["commands"] == 2 and figures["out_of_domain"] == 0 and figures["home"] == "home.yaml"
    assert figures["commands_understood"] == 2 and figures["unparsed_references"] == 0
    assert figures["wrong_actions"] == 0  # heard right or rejected, never another action
    assert 0 < figures["rtf"] < 1 and "commands executed exactly right" in measured.output

    ood = runner.invoke(app, ["voice", "eval", str(only_ood), "--json", str(out)])
    assert ood.exit_code == 0, ood.output
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert figures["out_of_domain"] == 30 and figures["false_actions"] == 0


def test_typed_requests_and_bad_folders(tmp_path: Path) -> None:
    typed = runner.invoke(app, ["voice", "text", str(Path(__file__).parent / "data" / "text_en.yaml")])
    assert typed.exit_code == 0, typed.output
    assert "exact (intent and slots)" in typed.output and "false actions" in typed.output

    empty = runner.invoke(app, ["voice", "eval", str(tmp_path)])
    assert empty.exit_code == 2 and "no audio file" in _words(empty.output)
    wrong = runner.invoke(app, ["voice", "eval", str(tmp_path), "--engine", "nonsense"])
    assert wrong.exit_code == 2
    bad_home = tmp_path / "bad.yaml"
    bad_home.write_text("rooms: [unclosed", encoding="utf-8")
    refused = runner.invoke(app, ["voice", "synth", str(tmp_path / "x"), "--home", str(bad_home)])
    assert refused.exit_code == 2 and "not a home description" in _words(refused.output)
