# ruff: noqa: RUF001, RUF002  (IPA symbols look like Latin letters on purpose)
"""Pronunciations for words the recogniser's dictionary lacks (brand and device names people give).

espeak-ng (the Debian package the hub already uses for speech out) spells any word in IPA; the IPA is mapped
to the ARPAbet phones of the pocketsphinx US-English model. Without espeak-ng a word has no pronunciation and
the sentences that need it are left out of the grammar (the engine reports which).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Final

__all__ = ["ipa_to_arpabet", "pronounce"]

# Longest symbols first: diphthongs and affricates before their parts.
_IPA: Final = {
    "t͡ʃ": "CH",
    "tʃ": "CH",
    "d͡ʒ": "JH",
    "dʒ": "JH",
    "aɪ": "AY",
    "aʊ": "AW",
    "eɪ": "EY",
    "oʊ": "OW",
    "əʊ": "OW",
    "ɔɪ": "OY",
    "ɪə": "IH R",
    "eə": "EH R",
    "ʊə": "UH R",
    "ɑː": "AA",
    "ɔː": "AO",
    "ɜː": "ER",
    "iː": "IY",
    "uː": "UW",
    "ɑ": "AA",
    "ɒ": "AA",
    "æ": "AE",
    "a": "AE",
    "ʌ": "AH",
    "ə": "AH",
    "ɐ": "AH",
    "ɔ": "AO",
    "ɛ": "EH",
    "e": "EH",
    "ɜ": "ER",
    "ɝ": "ER",
    "ɚ": "ER",
    "ɪ": "IH",
    "ᵻ": "IH",
    "i": "IY",
    "ʊ": "UH",
    "u": "UW",
    "o": "OW",
    "b": "B",
    "p": "P",
    "d": "D",
    "t": "T",
    "ɾ": "D",
    "k": "K",
    "ɡ": "G",
    "g": "G",
    "f": "F",
    "v": "V",
    "θ": "TH",
    "ð": "DH",
    "s": "S",
    "z": "Z",
    "ʃ": "SH",
    "ʒ": "ZH",
    "h": "HH",
    "x": "HH",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "l": "L",
    "ɫ": "L",
    "ɹ": "R",
    "r": "R",
    "w": "W",
    "j": "Y",
}
_IGNORED: Final = set("ˈˌː‍ \n.ʔ̩")  # stress marks, length, zero-width joiner, glottal stop, syllabic mark
_LONGEST: Final = max(len(k) for k in _IPA)


def ipa_to_arpabet(ipa: str) -> str | None:
    """``"kˈɪt‍ʃən" -> "K IH CH AH N"``; None when a symbol has no ARPAbet counterpart."""
    text = "".join(c for c in ipa if c not in "ˈˌ‍")
    phones: list[str] = []
    i = 0
    while i < len(text):
        for size in range(_LONGEST, 0, -1):
            piece = text[i : i + size]
            if piece in _IPA:
                phones.append(_IPA[piece])
                i += size
                break
        else:
            if text[i] not in _IGNORED:
                return None
            i += 1
    return " ".join(phones) or None


def pronounce(word: str, *, voice: str = "en-us", timeout: float = 5.0) -> str | None:
    """ARPAbet pronunciation of one word by espeak-ng's rules, or None (no espeak-ng, or not mappable)."""
    exe = shutil.which("espeak-ng")
    if exe is None or not word.strip():
        return None
    try:
        done = subprocess.run(
            [exe, "-q", "--ipa=3", "-v", voice, word], capture_output=True, timeout=timeout, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return ipa_to_arpabet(done.stdout.decode("utf-8", "replace").strip())
