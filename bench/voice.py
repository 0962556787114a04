"""Speech to text on the synthesised command set: exact commands, word error rate, out-of-domain rejection, speed.

Commands are drawn from the evaluation grammar (``synth_set.home_grammar()``, which is also the grammar given to
the engine), spoken by espeak-ng in several voices and speeds, put between stretches of quiet, with noise added
at the given SNR; out-of-domain sentences are spoken the same way. Each utterance is streamed through voice
activity detection in 20 ms chunks and decoded as it arrives; latency is from the end of speech to the
transcript (the detector's hang-over plus the decoder's final work).

    python bench/voice.py --commands 40 --voices 4 --speeds 150,190 --noise pink --snr 15 --seed 2
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine
from tosplus.services.voice import synth_set
from tosplus.services.voice.evaluate_audio import evaluate
from tosplus.services.voice.stt import Grammar
from tosplus.services.voice.stt.sphinx import SphinxEngine

console = Console()


async def run(
    commands: int, voices: int, speeds: list[int], noise: str, snr: float | None, seed: int, threshold: float | None
) -> None:
    grammar = Grammar.of(synth_set.home_grammar())
    said = synth_set.sample_commands(commands, seed=seed)
    chosen = synth_set.VOICES[:voices]
    started = time.perf_counter()
    utterances = await synth_set.render(
        said,
        out_of_domain=synth_set.OUT_OF_DOMAIN,
        voices=chosen,
        speeds=speeds,
        noise=noise,  # type: ignore[arg-type]
        snr_db=snr,
        seed=seed,
    )
    console.print(f"rendered {len(utterances)} utterances in {time.perf_counter() - started:.1f} s")
    engine = SphinxEngine() if threshold is None else SphinxEngine(threshold=threshold)
    await engine.prepare(grammar)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as progress:
        task = progress.add_task(engine.name, total=len(utterances))
        report = await evaluate(engine, utterances, grammar=grammar, progress=lambda: progress.advance(task))
    s = report.summary()
    table = Table(title=f"{engine.name}: {len(grammar)} grammar sentences, {noise} noise at {snr} dB SNR")
    for column in ["commands", "exact", "WER", "rejected", "out of domain", "OOD accepted", "RTF"]:
        table.add_column(column, justify="right")
    table.add_column("latency p50 / p95", justify="right")
    table.add_column("p95, 2.5-3.5 s commands", justify="right")
    table.add_row(
        str(s["commands"]),
        f"{s['exact']:.1%}",
        f"{s['wer']:.1%}",
        str(s["false_rejects"]),
        str(s["out_of_domain"]),
        f"{s['ood_accepted']} ({s['ood_accepted'] / max(1, s['out_of_domain']):.1%})",
        f"{s['rtf']:.3f}",
        f"{s['latency_p50_s'] * 1000:.0f} / {s['latency_p95_s'] * 1000:.0f} ms",
        f"{s['latency_p95_3s_s'] * 1000:.0f} ms (n={s['commands_3s']})",
    )
    console.print(table)
    finish = sorted(r.decode_seconds for r in report.results if not r.vad_missed)
    hang = sorted(r.hangover_seconds for r in report.commands if not r.vad_missed)
    console.print(
        f"end of speech -> transcript = detector hang-over (p50 {hang[len(hang) // 2] * 1000:.0f} ms) + final decode"
        f" (p50 {finish[len(finish) // 2] * 1000:.0f} ms, p95 {finish[int(0.95 * (len(finish) - 1))] * 1000:.0f} ms)"
    )
    by_voice: dict[str, list[bool]] = {}
    for r in report.commands:
        by_voice.setdefault(r.voice.split("@")[0], []).append(r.exact)
    console.print("exact by voice: " + ", ".join(f"{v} {sum(x) / len(x):.1%}" for v, x in by_voice.items()))
    for r in report.mistakes():
        console.print(f"  [red]x[/red] {r.voice:22} said {r.said!r:45} heard {r.heard!r} ({r.confidence:.2f})")
    console.print(f"machine: {machine()}")
    console.print("command: python " + " ".join(sys.argv))


def main(
    commands: int = typer.Option(40, help="different commands spoken"),
    voices: int = typer.Option(4, min=1, max=len(synth_set.VOICES), help=f"voices from {synth_set.VOICES}"),
    speeds: str = typer.Option("150,190", help="speaking rates, words per minute"),
    noise: str = typer.Option("pink", help="none, white, pink or babble"),
    snr: float = typer.Option(15.0, help="signal-to-noise ratio in dB"),
    seed: int = typer.Option(2, help="2 and up: the threshold was set on seed 1"),
    threshold: float = typer.Option(None, help="rejection threshold (default: the engine's)"),
) -> None:
    levels = [int(x) for x in speeds.split(",")]
    asyncio.run(run(commands, voices, levels, noise, None if noise == "none" else snr, seed, threshold))


if __name__ == "__main__":
    typer.run(main)
