"""Text as a recogniser hears it: lowercase words, numbers spelled out, no punctuation.

``normalize("Set the thermostat to 21.5°C!") == "set the thermostat to twenty one point five degrees c"``.
Both sides of every comparison (grammar sentences, transcripts, expected texts in evaluations) go through it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["normalize", "number_words", "words"]

_ONES: Final = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS: Final = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES: Final = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))
_ORDINALS: Final = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_SYMBOLS: Final = {"%": " percent ", "°": " degrees ", "&": " and ", "+": " plus ", "@": " at ", "#": " number "}
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(st|nd|rd|th)?(?![\w])")
_NOT_WORD = re.compile(r"[^\w' ]+")


def number_words(n: int) -> str:
    """``21 -> "twenty one"``, ``1005 -> "one thousand five"`` (0 .. 999,999,999,999)."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    for size, name in _SCALES:
        if n >= size:
            big, rest = divmod(n, size)
            return number_words(big) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell(match: re.Match[str]) -> str:
    number, suffix = match.group(1), match.group(2)
    if "." in number or "," in number:
        whole, _, frac = number.replace(",", ".").partition(".")
        return f" {number_words(int(whole))} point {' '.join(_ONES[int(d)] for d in frac)} "
    if len(number) > 12:
        return " " + " ".join(_ONES[int(d)] for d in number) + " "
    spoken = number_words(int(number))
    return f" {_ordinal(spoken) if suffix else spoken} "


def normalize(text: str) -> str:
    """Lowercase words separated by single spaces; digits spelled out; punctuation and symbols dropped."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = _NUMBER.sub(_spell, text)
    text = _NOT_WORD.sub(" ", text.replace("-", " ").replace("_", " "))
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def words(text: str) -> list[str]:
    return normalize(text).split()
