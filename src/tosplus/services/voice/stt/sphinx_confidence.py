"""How sure the default engine is of a grammar sentence: competitors that are free to hear anything.

Two free searches run on the same audio as the grammar search:

- the general English trigram model (what was really said, when it is ordinary English), and
- a phone loop (pocketsphinx's ``allphone`` mode with the wheel's phone bigram model): the best sequence of
  sounds with no words at all, the classic "garbage model" of keyword spotting. It is cheap (about 0.06 of real
  time against 0.28 for the trigram search).

Three per-frame measures come out of them, in the decoder's log units:

- ``english``: the grammar path's total score minus the English path's (language model scores included);
- ``acoustic``: the grammar path's acoustic score minus the phone loop's, over the whole utterance — how much
  worse the words of the sentence fit the sounds than the best sounds do;
- ``words``: the same difference word by word (the phone loop's score spread evenly over each phone's frames),
  averaged over the sentence's words.

Speech that is the sentence fits it nearly as well as the free searches fit it; speech forced through a sentence
it is not loses to them everywhere, and by more in the words that were not said. The measures are combined
into one score, ``2 * english + acoustic + words / 2`` (:func:`combined`), accepted from ``threshold``. The
weights and the threshold were chosen on synthesised development sets (seeds 11 and 23 of ``tosplus voice
synth``: 320 commands and 240 out-of-domain requests, four voices, pink noise at 15 dB), so that at most one
out-of-domain request in 240 reaches it; alone, the English margin had to be set where a third of the commands
whose sentence was right were rejected.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = ["Measures", "combined", "measures", "new_phone_decoder", "segments"]

_LOG_BASE: Final = math.log(1.0001)  # pocketsphinx's log base: scores are log_1.0001 of probabilities
_WEIGHTS: Final = (2.0, 1.0, 0.5)  # english, acoustic, words


@dataclass(frozen=True, slots=True)
class Measures:
    english: float
    acoustic: float
    words: float

    @property
    def score(self) -> float:
        return combined(self.english, self.acoustic, self.words)


def combined(english: float, acoustic: float, words: float) -> float:
    a, b, c = _WEIGHTS
    return a * english + b * acoustic + c * words


def new_phone_decoder(model_dir: str, sample_rate: int, cmn: str) -> Any:
    """A phone-loop decoder (no words: every phone may follow every phone, weighted by the phone bigram)."""
    from pocketsphinx import Config, Decoder

    decoder = Decoder(
        Config(
            hmm=os.path.join(model_dir, "en-us"),
            allphone=os.path.join(model_dir, "en-us-phone.lm.bin"),
            lm=None,
            loglevel="FATAL",
            samprate=sample_rate,
            bestpath=False,
            lw=2.0,
            beam=1e-20,
            pbeam=1e-20,
        )
    )
    decoder.set_cmn(cmn)
    return decoder


def _log(p: float) -> float:
    return math.log(p) / _LOG_BASE if p > 0 else -1e9


def segments(decoder: Any) -> list[tuple[str, int, int, float]]:
    """The best path of an ended utterance: (word or phone, first frame, last frame, acoustic log score)."""
    if decoder.hyp() is None:
        return []
    return [(str(s.word), int(s.start_frame), int(s.end_frame), _log(float(s.ascore))) for s in decoder.seg()]


def measures(
    grammar: Sequence[tuple[str, int, int, float]],
    phones: Sequence[tuple[str, int, int, float]],
    english_margin: float,
    frames: int,
    speech_frames: int,
) -> Measures | None:
    """The three measures of a grammar path against the phone loop's (segments as :func:`segments` gives them)
    over ``frames``; ``english_margin``: the per-frame total score difference against the English search. The
    acoustic difference is per frame of speech (``speech_frames``: without the quiet added around it, which
    scores alike everywhere). None without a path."""
    if not grammar or not phones or frames <= 0:
        return None
    per_frame = np.zeros(frames + 1, np.float64)
    for _, first, last, score in phones:
        last = min(last, frames)
        if last >= first:
            per_frame[first : last + 1] = score / (last - first + 1)
    acoustic = sum(score for _, _, _, score in grammar) - float(per_frame.sum())
    words = [
        (score - float(per_frame[first : min(last, frames) + 1].sum())) / max(last - first + 1, 1)
        for word, first, last, score in grammar
        if word[:1] not in ("<", "(", "[")  # silence, null transitions, fillers
    ]
    return Measures(english_margin, acoustic / max(speech_frames, 1), float(np.mean(words)) if words else -1e9)
