"""Wake phrases (sdk/wake.py): how often each packaged phrase is heard before a command, and how often it fires on
speech without it. Synthesised with espeak-ng in every voice of the evaluation set and three speeds, clean and
with pink noise at 15 dB; the out-of-domain requests of the set are the speech without a phrase.

    python bench/voice_wake.py [--seed 2]
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tosplus.sdk.wake import PHRASES, WakeWord
from tosplus.services.voice import synth_set

COMMANDS = ("turn on the kitchen light", "what is the temperature in the bedroom", "pause the tv")
console = Console()


async def measure(seed: int) -> Table:
    table = Table(title=f"Wake phrases · {os.cpu_count()} cores · seed {seed}")
    for column in ("phrase", "noise", "heard", "fired without it", "ms per second of audio"):
        table.add_column(column)
    with Progress(console=console) as bar:
        task = bar.add_task("phrases", total=len(PHRASES) * 2)
        for model, phrase in PHRASES.items():
            for noise, snr in (("none", None), ("pink", 15.0)):
                said = [f"{phrase}, {c}" for c in COMMANDS]
                utterances = await synth_set.render(
                    said,
                    out_of_domain=synth_set.OUT_OF_DOMAIN,
                    voices=synth_set.VOICES,
                    speeds=(150, 175, 200),
                    noise=noise,  # type: ignore[arg-type]
                    snr_db=snr,
                    seed=seed,
                )
                wake = WakeWord(model)
                heard = fired = with_phrase = without = 0
                audio_s = spent = 0.0
                for u in utterances:
                    wake.reset()
                    pcm = u.audio.pcm()
                    started = time.perf_counter()
                    hit = any(wake.feed(pcm[i : i + 640]) for i in range(0, len(pcm), 640))
                    spent += time.perf_counter() - started
                    audio_s += u.audio.seconds
                    if u.expected:
                        with_phrase += 1
                        heard += hit
                    else:
                        without += 1
                        fired += hit
                table.add_row(
                    phrase,
                    noise if snr is None else f"{noise} {snr:g} dB",
                    f"{heard}/{with_phrase} ({heard / with_phrase:.0%})",
                    f"{fired}/{without}",
                    f"{spent / audio_s * 1000:.1f}",
                )
                bar.advance(task)
    return table


def main(seed: Annotated[int, typer.Option(help="Noise and timing seed.")] = 2) -> None:
    console.print(asyncio.run(measure(seed)))


if __name__ == "__main__":
    typer.run(main)
