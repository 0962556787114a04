"""Where the default engine loses commands: the search, the acoustic model, or the rejection.

For every command of an evaluation folder (as ``tosplus voice synth`` writes it, or recordings with transcripts),
the utterance as the detector cut it is decoded with the home's grammar, like the hub does, and sorted:

- **best path right**: the grammar search's own best sentence means the command (intent and slots), whether the
  rejection then kept it (*accepted*) or not (*rejected though right*). This share is the ceiling any rejection
  measure can reach with this search and model.
- **best path wrong**, then only the right sentence and the engine's answer compete, weighted as in the whole
  grammar (:meth:`SphinxEngine.prefer`): when the right one wins, the *search lost it* (pruning, or a search that
  ended inside a sentence); when the wrong one still wins, the *acoustic model prefers it* and no search or
  rejection can recover the command. *Not in the grammar*: the reference is no path of it.

Out-of-domain utterances (empty transcripts) are counted as acted on when accepted with a meaning.

    tosplus voice synth eval-set --commands 40 --seed 11
    .venv/bin/python -m bench.voice_ceiling eval-set [--json ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tosplus.services.voice.cli import BUILT_IN_HOME, _grammar, _load_home
from tosplus.services.voice.evaluate_audio import from_folder
from tosplus.services.voice.evaluate_intents import same_meaning
from tosplus.services.voice.stt.sphinx import SphinxEngine
from tosplus.services.voice.stt.text import normalize
from tosplus.services.voice.understanding import Slots, recognize

KINDS = ("accepted", "rejected though right", "search lost it", "model prefers another", "not in the grammar")
CONTEXT_S = 0.3  # audio kept either side of the detected speech, as the detector hands it over


def classify(engine: SphinxEngine, grammar: Any, graph: Any, slots: Slots, audio: Any, expected: str) -> dict[str, Any]:
    transcript = engine.decode(audio, grammar)
    best, reference = transcript.best_guess, normalize(expected)
    row: dict[str, Any] = {"expected": reference, "best": best, "heard": transcript.text}
    if same_meaning(reference, best, "en", slots):
        row["kind"] = KINDS[0] if same_meaning(reference, transcript.text, "en", slots) else KINDS[1]
    elif not graph.accepts(reference.split()):
        row["kind"] = KINDS[4]
    else:
        rivals = [reference] + ([best] if best and best != reference else [])
        row["preferred"] = engine.prefer(audio, grammar, rivals)
        row["kind"] = KINDS[2] if row["preferred"] == reference else KINDS[3]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument(
        "--home", type=Path, default=None, help="the home's names (YAML); else the folder's or built-in"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    home = args.home or (args.folder / "home.yaml" if (args.folder / "home.yaml").exists() else BUILT_IN_HOME)
    slots = _load_home(home)
    grammar = _grammar("en", slots)
    engine = SphinxEngine()
    compiled = engine.compile(grammar)
    utterances = from_folder(args.folder)
    console = Console()
    rows: list[dict[str, Any]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("decoding", total=len(utterances))
        for u in utterances:
            audio = u.audio.slice(max(0.0, u.speech_start_s - CONTEXT_S), u.speech_end_s + CONTEXT_S)
            voice = u.id.split("-", 1)[1] if "-" in u.id else "recorded"
            if u.expected:
                row = classify(engine, grammar, compiled.graph, slots, audio, u.expected)
            else:
                heard = engine.decode(audio, grammar).text
                row = {
                    "expected": "",
                    "heard": heard,
                    "kind": "acted on" if recognize(heard, "en", slots) else "rejected",
                }
            rows.append({"id": u.id, "voice": voice} | row)
            bar.advance(task)
    commands = [r for r in rows if r["expected"]]
    voices = sorted({r["voice"] for r in commands})
    table = Table(title=f"{len(commands)} commands of {args.folder.name}: where they end")
    table.add_column("")
    for v in [*voices, "all"]:
        table.add_column(v, justify="right")
    for kind in KINDS:
        counts = Counter(r["voice"] for r in commands if r["kind"] == kind)
        table.add_row(kind, *(str(counts[v]) for v in voices), str(sum(counts.values())))
    console.print(table)
    right = sum(r["kind"] in KINDS[:2] for r in commands)
    ood = [r for r in rows if not r["expected"]]
    console.print(
        f"best path right {right}/{len(commands)} ({right / max(len(commands), 1):.1%}, the ceiling of any rejection); "
        f"accepted and right {sum(r['kind'] == KINDS[0] for r in commands)}; "
        f"out-of-domain acted on {sum(r['kind'] == 'acted on' for r in ood)}/{len(ood)}"
    )
    if args.json:
        args.json.write_text(json.dumps({"home": str(home.name), "rows": rows}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
