"""``tosplus voice ...``: measure recognition on this machine, with recorded or synthesised speech.

- ``eval FOLDER``: every audio file with a same-named ``.txt`` transcript (empty = out-of-domain speech) goes
  through voice activity detection and an engine as a device would stream it, then through understanding with
  the home's names; prints word error rate, exact transcripts, commands executed exactly right (intent and
  slots), intent accuracy, false actions on out-of-domain speech, real-time factor and latency after the end
  of speech. The home is ``--home`` or ``FOLDER/home.yaml`` (format: the ``home:`` of a typed test set),
  else the built-in one.
- ``text FILE``: a typed test set (YAML: home, cases, out_of_domain) — intent and slot accuracy.
- ``synth OUT``: write a synthesised set to a folder (WAV + transcript per utterance, and ``home.yaml``):
  commands from the home file's ``commands:`` (the built-in home has 153 written as people talk; else drawn
  from what the home's intents accept), spoken by espeak-ng in several voices with noise, and
  out-of-domain requests. ``eval`` then runs on it like on any recording.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False)
console = Console()

BUILT_IN_HOME = Path(__file__).parent / "data" / "home_en.yaml"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


def _load_home(path: Path) -> Any:
    import yaml

    from tosplus.services.voice.evaluate_text import home_slots_of

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        return home_slots_of(doc.get("home", doc) if isinstance(doc, dict) else {})
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"{path}: not a home description ({exc})") from exc


def _commands_of(path: Path) -> list[str]:
    """The home file's ``commands:`` (what people say to that home), if it has them."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    listed = doc.get("commands") if isinstance(doc, dict) else None
    return [str(c) for c in listed] if isinstance(listed, list) else []


def _engine(name: str) -> Any:
    if name == "pocketsphinx":
        from tosplus.services.voice.stt.sphinx import SphinxEngine

        return SphinxEngine()
    if name == "whisper":
        try:
            from tosplus.services.voice.stt.whisper import WhisperEngine
        except ImportError as exc:
            raise typer.BadParameter(
                f"the whisper engine is not installed ({exc}): pip install 'tosplus[whisper]'"
            ) from exc
        return WhisperEngine()
    raise typer.BadParameter(f"no engine {name!r}: pocketsphinx or whisper")


def _grammar(language: str, slots: Any) -> Any:
    """What the hub gives the default engine for this home: the word graph compiled from the templates."""
    from tosplus.services.voice.stt import Grammar
    from tosplus.services.voice.understanding.speech_graph import template_graph

    return Grammar.of_graph(template_graph(language, slots))


def _percent(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.1%}"


@app.command("eval")
def evaluate(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Audio files with .txt transcripts.")],
    engine: Annotated[str, typer.Option(help="pocketsphinx (grammar + rejection) or whisper (free-form).")] = (
        "pocketsphinx"
    ),
    language: Annotated[str, typer.Option(help="en or zh-cn.")] = "en",
    home: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="The home's names (YAML).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every figure and result here.")] = None,
    mistakes: Annotated[int, typer.Option(help="How many wrong results to list.")] = 10,
) -> None:
    """Word error rate, commands executed exactly right, intents, false actions, speed: on FOLDER's speech."""
    from tosplus.services.voice import evaluate_audio
    from tosplus.services.voice.evaluate_intents import score_intents
    from tosplus.services.voice.understanding import normalize_language

    language = normalize_language(language)
    home_file = home or (folder / "home.yaml" if (folder / "home.yaml").exists() else BUILT_IN_HOME)
    slots = _load_home(home_file)
    with console.status("Reading the recordings…"):
        utterances = evaluate_audio.from_folder(folder)
    if not utterances:
        raise typer.BadParameter(f"{folder}: no audio file (.wav .ogg .opus .flac) with a .txt transcript")
    stt = _engine(engine)
    grammar = _grammar(language, slots) if engine == "pocketsphinx" else None

    async def run() -> evaluate_audio.Report:
        with _progress() as bar:
            task = bar.add_task(f"{stt.name} on {len(utterances)} utterances", total=len(utterances))
            return await evaluate_audio.evaluate(
                stt, utterances, grammar=grammar, language=language, progress=lambda: bar.advance(task)
            )

    report = asyncio.run(run())
    intents = score_intents(report.results, language, slots)
    figures = report.summary() | intents.summary() | {"home": str(home_file.name)}
    _print_figures(figures)
    wrong = [r for r in report.results if not r.exact][:mistakes]
    if wrong:
        table = Table(title=f"First {len(wrong)} wrong transcripts")
        for column in ("file", "said", "heard", "confidence"):
            table.add_column(column)
        for r in wrong:
            table.add_row(
                r.id,
                r.expected or "[dim](out of domain)[/dim]",
                r.heard or "[dim](rejected)[/dim]",
                f"{r.confidence:.2f}",
            )
        console.print(table)
    if json_out is not None:
        results = [
            {
                "id": r.id,
                "expected": r.expected,
                "heard": r.heard,
                "confidence": r.confidence,
                "latency_s": r.latency_seconds,
            }
            for r in report.results
        ]
        json_out.write_text(json.dumps({"figures": figures, "results": results}, indent=1), encoding="utf-8")


def _print_figures(f: dict[str, Any]) -> None:
    table = Table(title=f"{f['engine']} · {f['language']} · home {f['home']}", show_header=False)
    rows = [
        ("commands / out-of-domain", f"{f['commands']} / {f['out_of_domain']}"),
        ("word error rate", _percent(f["wer"])),
        ("transcripts exactly right", _percent(f["exact"])),
        ("commands executed exactly right", _percent(f["executed_exactly"])),
        ("intent accuracy", _percent(f["intent_accuracy"])),
        ("commands rejected", str(f["false_rejects"])),
        ("wrong actions (commands)", str(f["wrong_actions"])),
        ("false actions (out-of-domain)", f"{f['false_actions']} ({_percent(f['false_action_rate'])})"),
        ("references the home cannot do", str(f["unparsed_references"])),
        ("real-time factor", f"{f['rtf']:.3f}"),
        (
            "end of speech → transcript p50 / p95",
            f"{f['latency_p50_s'] * 1000:.0f} / {f['latency_p95_s'] * 1000:.0f} ms",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@app.command("text")
def text(
    test_set: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A YAML test set.")],
    misses: Annotated[int, typer.Option(help="How many misses to list.")] = 10,
) -> None:
    """Intent and slot accuracy, and false actions, on typed requests."""
    from tosplus.services.voice.evaluate_text import evaluate as evaluate_typed
    from tosplus.services.voice.evaluate_text import load_test_set

    cases = load_test_set(test_set)
    with _progress() as bar:
        task = bar.add_task("understanding", total=len(cases.cases) + len(cases.out_of_domain))
        report = evaluate_typed(cases, lambda done: bar.update(task, completed=done))
    table = Table(title=f"typed · {report.language}", show_header=False)
    table.add_row("cases / out-of-domain", f"{report.cases} / {report.out_of_domain}")
    table.add_row("exact (intent and slots)", _percent(report.exact_accuracy))
    table.add_row("intent", _percent(report.intent_accuracy))
    table.add_row("false actions", f"{report.false_actions} ({_percent(report.false_action_rate)})")
    console.print(table)
    for miss in report.misses[:misses]:
        console.print(f"[yellow]✗[/yellow] {miss.text!r}: expected {miss.expected}, got {miss.got}")


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(file_okay=False, help="Folder to write (created).")],
    commands: Annotated[int, typer.Option(help="Different commands to speak.")] = 40,
    voices: Annotated[str, typer.Option(help="espeak-ng voices, comma-separated, or 'all'.")] = "all",
    noise: Annotated[str, typer.Option(help="none, white, pink or babble.")] = "pink",
    snr: Annotated[float, typer.Option(help="Signal-to-noise ratio in dB.")] = 15.0,
    out_of_domain: Annotated[bool, typer.Option("--ood/--no-ood", help="Add out-of-domain requests.")] = True,
    seed: Annotated[int, typer.Option(help="Same seed, same set.")] = 1,
    home: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="The home's names (YAML).")] = None,
) -> None:
    """Write a synthesised evaluation set: the home file's commands (else sentences its intents accept), spoken
    in several voices, with noise."""
    from tosplus.services.voice import synth_set
    from tosplus.services.voice.understanding.grammar import expand_sentences

    if noise not in ("none", "white", "pink", "babble"):
        raise typer.BadParameter("noise must be none, white, pink or babble")
    home_file = home or BUILT_IN_HOME
    slots = _load_home(home_file)
    chosen_voices = synth_set.VOICES if voices == "all" else tuple(v.strip() for v in voices.split(",") if v.strip())
    said = _commands_of(home_file) or expand_sentences("en", slots)
    sentences = synth_set.sample_commands(commands, seed=seed, grammar=said)
    ood = synth_set.OUT_OF_DOMAIN if out_of_domain else ()
    with console.status(f"Speaking {len(sentences) + len(ood)} sentences in {len(chosen_voices)} voices…"):
        rendered = asyncio.run(
            synth_set.render(
                sentences,
                out_of_domain=ood,
                voices=chosen_voices,
                noise=noise,  # type: ignore[arg-type]  # checked above
                snr_db=None if noise == "none" else snr,
                seed=seed,
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    with _progress() as bar:
        task = bar.add_task(f"writing {out}", total=len(rendered))
        for u in rendered:
            name = f"{u.id}-{u.voice.replace('+', '_')}"
            (out / f"{name}.wav").write_bytes(u.audio.wav())
            (out / f"{name}.txt").write_text(u.expected + "\n", encoding="utf-8")
            bar.advance(task)
    (out / "home.yaml").write_text(home_file.read_text(encoding="utf-8"), encoding="utf-8")
    in_domain = sum(1 for u in rendered if u.expected)
    console.print(f"[green]✓[/green] {len(rendered)} utterances ({in_domain} commands) and home.yaml in {out}")
