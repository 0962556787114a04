"""Speech to text on real recorded English speech: word error rate and real-time factor per engine.

Recordings come from Debian packages (human voices, not synthesized):

- ``asterisk``: the Asterisk PBX prompts (one US-English speaker, 8 kHz telephone audio; ~560 prompts from one
  word to several sentences), packages ``asterisk-core-sounds-en-wav`` (the audio) and ``asterisk-core-sounds-en``
  (``core-sounds-en.txt``: "file: text" lines). Tones, silences and bracketed notes are left out.
- ``pocketsphinx``: ``pocketsphinx-testdata``'s LibriVox audiobook sentences and spoken playing cards (16 kHz).

and, for want of any recorded Mandarin in the registries, ``mandarin``: Mandarin home commands and questions
synthesized with espeak-ng's ``cmn-latn-pinyin`` voice at two speeds, scored by character error rate (CER).

Both sides are normalised the same way before counting (lowercase, punctuation dropped, numbers spelled out,
hyphens split, a few abbreviations spelled out). Each file is decoded whole, without a grammar.

    apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en pocketsphinx-testdata
    .venv/bin/python -m bench.voice_real --engine whisper --engine pocketsphinx
    .venv/bin/python -m bench.voice_real --set pocketsphinx --limit 10 --show 5
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tosplus.services.voice.audio import Audio, load
from tosplus.services.voice.stt import SpeechToText
from tosplus.services.voice.stt.text import normalize

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")

_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay", "vs": "versus"}
_CONTRACTIONS = {"won't": "will not", "can't": "can not", "cannot": "can not", "let's": "let us", "i'm": "i am"}
_SUFFIXES = (("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"), ("'m", " am"))
_IS = frozenset({"it's", "that's", "there's", "here's", "what's", "he's", "she's", "who's", "where's"})
_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_SPHINX_LINE = re.compile(r"^<s>\s*(.*?)\s*</s>\s*\(([^)]+)\)\s*$")


@dataclass(frozen=True)
class Recording:
    id: str
    path: Path | None
    text: str
    language: str = "en"
    wav: bytes = b""  # the audio itself when there is no file


MANDARIN = (
    "打开客厅的灯", "关闭卧室的灯", "把空调调到二十一度", "今天天气怎么样", "播放第五频道", "把电视音量调大",
    "厨房的温度是多少", "打开窗帘", "关掉所有的灯", "我要付三十元给咖啡店", "暂停播放", "明天早上七点叫我起床",
    "把灯调暗一点", "打开电视", "锁上前门", "客厅的灯开着吗", "把暖气关掉", "播放音乐", "现在几点了",
    "设置十分钟的计时器",
)  # fmt: skip


def _expand(word: str) -> str:
    if word in _CONTRACTIONS:
        return _CONTRACTIONS[word]
    if word in _IS:
        return word[:-2] + " is"
    for suffix, full in _SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix):
            return word[: -len(suffix)] + full
    return _ABBREVIATIONS.get(word, word)


def words(text: str) -> list[str]:
    """The words compared: :func:`normalize`, then contractions and abbreviations spelled out and runs of single
    letters joined (``"p m"`` -> ``"pm"``), the same on both sides."""
    out: list[str] = []
    letters = False  # the last word is a run of single letters
    for word in " ".join(_expand(w) for w in normalize(text).split()).split():
        if len(word) == 1 and word.isalpha() and letters:
            out[-1] += word  # a spelled-out acronym: "m i s d n" -> "misdn"
        else:
            out.append(word)
            letters = len(word) == 1 and word.isalpha()
    return out


def join_compounds(ref: list[str], hyp: list[str]) -> tuple[list[str], list[str]]:
    """Two adjacent words on one side written as one word on the other ("voice mail" / "voicemail") count as
    that one word on both sides."""

    def join(side: list[str], other: set[str]) -> list[str]:
        out: list[str] = []
        for word in side:
            if out and out[-1] + word in other and out[-1] + word not in side:
                out[-1] += word
            else:
                out.append(word)
        return out

    return join(ref, set(hyp)), join(hyp, set(ref))


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def asterisk_set() -> list[Recording]:
    if not ASTERISK_TEXT.exists() or not ASTERISK_SOUNDS.is_dir():
        raise SystemExit("asterisk set: apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en")
    out = []
    with gzip.open(ASTERISK_TEXT, "rt", encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        name, sep, text = line.partition(":")
        if not sep or line.startswith(";"):
            continue
        # the prompts say "pound" and "star" for the keys written # and *
        text = _BRACKETED.sub(" ", text).replace("#", " pound ").replace("*", " star ").strip()
        path = ASTERISK_SOUNDS / f"{name.strip()}.wav"
        if text and words(text) and path.exists():
            out.append(Recording(f"asterisk/{name.strip()}", path, text))
    return out


def pocketsphinx_set() -> list[Recording]:
    if not SPHINX_DATA.is_dir():
        raise SystemExit("pocketsphinx set: apt-get install pocketsphinx-testdata")
    out = []
    for folder, transcripts in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in (SPHINX_DATA / folder / transcripts).read_text(encoding="utf-8").splitlines():
            m = _SPHINX_LINE.match(line.strip())
            if m and (SPHINX_DATA / folder / f"{m.group(2)}.wav").exists():
                out.append(Recording(f"{folder}/{m.group(2)}", SPHINX_DATA / folder / f"{m.group(2)}.wav", m.group(1)))
    return out


def mandarin_set() -> list[Recording]:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("mandarin set: apt-get install espeak-ng")
    out = []
    for speed in (140, 175):
        for i, text in enumerate(MANDARIN):
            cmd = ["espeak-ng", "-v", "cmn-latn-pinyin", "-s", str(speed), "--stdout", text]
            wav = subprocess.run(cmd, capture_output=True, check=True).stdout
            out.append(Recording(f"mandarin/{i:02d}@{speed}", None, text, "zh", wav))
    return out


SETS: dict[str, Callable[[], list[Recording]]] = {
    "asterisk": asterisk_set,
    "pocketsphinx": pocketsphinx_set,
    "mandarin": mandarin_set,
}


def make_engine(name: str, args: argparse.Namespace) -> SpeechToText:
    if name == "whisper":
        from tosplus.services.voice.stt.whisper import WhisperEngine

        return WhisperEngine(beam_size=args.beam, timestamps=not args.no_timestamps)
    if name == "pocketsphinx":
        from tosplus.services.voice.stt.sphinx import SphinxEngine

        return SphinxEngine()
    raise SystemExit(f"unknown engine {name!r} (whisper, pocketsphinx)")


@dataclass
class Row:
    id: str
    ref: list[str]
    hyp: list[str]
    errors: int
    seconds: float
    taken: float


@dataclass
class Score:
    engine: str
    set: str
    rows: list[Row] = field(default_factory=list)

    def _sum(self, rows: list[Row]) -> tuple[int, int]:
        return sum(r.errors for r in rows), sum(len(r.ref) for r in rows)

    def wer(self, min_words: int = 0) -> float:
        errors, n = self._sum([r for r in self.rows if len(r.ref) >= min_words])
        return errors / n if n else float("nan")

    @property
    def rtf(self) -> float:
        audio = sum(r.seconds for r in self.rows)
        return sum(r.taken for r in self.rows) / audio if audio else float("nan")

    def summary(self) -> dict[str, Any]:
        errors, n = self._sum(self.rows)
        return {
            "engine": self.engine,
            "set": self.set,
            "files": len(self.rows),
            "words": n,
            "errors": errors,
            "wer": round(self.wer(), 4),
            "wer_3_words_or_more": round(self.wer(3), 4),
            "audio_seconds": round(sum(r.seconds for r in self.rows), 1),
            "rtf": round(self.rtf, 3),
            "decode_p50_s": round(_percentile([r.taken for r in self.rows], 50), 3),
            "decode_p95_s": round(_percentile([r.taken for r in self.rows], 95), 3),
            "decode_p50_s_2_to_4_s_audio": round(
                _percentile([r.taken for r in self.rows if 2 <= r.seconds <= 4], 50), 3
            ),
        }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> list[Score]:
    console = Console(stderr=True)
    sets = {name: SETS[name]() for name in args.set}
    if args.limit:
        sets = {name: recs[: args.limit] for name, recs in sets.items()}
    audio: dict[str, Audio] = {}
    scores = []
    for engine_name in args.engine:
        engine = make_engine(engine_name, args)
        if hasattr(engine, "load"):
            await engine.load()
        for set_name, recordings in sets.items():
            score = Score(engine.name, set_name)
            with Progress(
                TextColumn(f"{engine.name} · {set_name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("WER {task.fields[wer]}"),
                console=console,
            ) as progress:
                task = progress.add_task("decode", total=len(recordings), wer="-")
                for rec in recordings:
                    clip = audio.get(rec.id)
                    if clip is None:
                        clip = audio[rec.id] = load(rec.wav or rec.path or b"", max_seconds=600)
                    if rec.language not in engine.languages:
                        break
                    started = time.perf_counter()
                    transcript = await engine.transcribe(clip, language=rec.language)
                    taken = time.perf_counter() - started
                    heard = transcript.text  # what the engine answers: rejected speech counts as words missed
                    if rec.language == "zh":  # characters
                        from tosplus.services.voice.stt.whisper import normalize_zh

                        ref, hyp = list(normalize_zh(rec.text)), list(normalize_zh(heard))
                    else:
                        ref, hyp = join_compounds(words(rec.text), words(heard))
                    score.rows.append(Row(rec.id, ref, hyp, edit_distance(ref, hyp), clip.seconds, taken))
                    progress.update(task, advance=1, wer=f"{score.wer():.1%}")
            if score.rows:
                scores.append(score)
    return scores


def report(scores: list[Score], show: int, cores: int) -> None:
    console = Console()
    table = Table(title=f"Speech to text: error rate per word (per character for Mandarin), {cores} cores")
    for col in ("engine", "set", "files", "words", "WER/CER", "WER (≥3 words)", "audio s", "RTF"):
        table.add_column(col, justify="left" if col in ("engine", "set") else "right")
    for s in scores:
        d = s.summary()
        table.add_row(
            d["engine"],
            d["set"],
            str(d["files"]),
            str(d["words"]),
            f"{d['wer']:.2%}",
            f"{d['wer_3_words_or_more']:.2%}",
            f"{d['audio_seconds']:.0f}",
            f"{d['rtf']:.3f}",
        )
    console.print(table)
    for s in scores:
        worst = sorted((r for r in s.rows if r.errors), key=lambda r: -r.errors)[:show]
        for r in worst:
            console.print(f"[dim]{s.engine} {r.id}[/] ref: {' '.join(r.ref)}\n    hyp: {' '.join(r.hyp)}")


def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", action="append", help="whisper (default), pocketsphinx; repeat for several")
    parser.add_argument("--set", action="append", choices=sorted(SETS), help="default: all sets")
    parser.add_argument("--limit", type=int, default=0, help="at most this many files per set")
    parser.add_argument("--beam", type=int, default=5, help="Whisper beam size (1 = greedy)")
    parser.add_argument("--no-timestamps", action="store_true", help="Whisper without timestamp tokens")
    parser.add_argument("--show", type=int, default=0, help="print the N worst transcripts per engine")
    parser.add_argument("--json", type=Path, help="write the summaries to this file")
    args = parser.parse_args(argv)
    args.engine = args.engine or ["whisper"]
    args.set = args.set or sorted(SETS)
    scores = asyncio.run(run(args))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    report(scores, args.show, cores)
    if args.json:
        args.json.write_text(json.dumps([s.summary() for s in scores], indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
