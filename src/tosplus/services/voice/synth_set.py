"""A synthesised evaluation set: spoken commands in several voices and speeds, with noise, and out-of-domain speech.

It lives in the package (not under bench/) because ``tosplus voice eval``, the tests and the benchmark all use
it, and because a hub can run it on its own hardware to check recognition there.

:func:`home_grammar` expands built-in templates (rooms, devices, thermostat degrees, channels, apps, scenes,
timers, payments) into 867 sentences: the grammar the recogniser is given. :func:`sample_commands`
picks the commands to speak from it; :data:`OUT_OF_DOMAIN` are things people say that no sentence covers, some
of them close to commands ("turn on the washing machine"). :func:`render` speaks every item with espeak-ng in
each voice and speed, puts it between stretches of quiet, and adds noise (white, pink, or babble made of other
synthesised speech) at the given signal-to-noise ratio. Everything is deterministic given the seed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from .audio import SAMPLE_RATE, Audio
from .tts import EspeakTTS

__all__ = [
    "OUT_OF_DOMAIN",
    "VOICES",
    "Utterance",
    "add_noise",
    "home_grammar",
    "render",
    "sample_commands",
]

VOICES: Final = ("en-us", "en-gb+f2", "en-us+m3", "en-gb-x-rp+f4")
Noise = Literal["none", "white", "pink", "babble"]

ROOMS: Final = ("kitchen", "living room", "bedroom", "bathroom", "office", "hallway", "dining room", "kids room")
DEVICES: Final = ("light", "lights", "lamp", "fan", "heater", "air conditioner", "speaker", "plug")
APPS: Final = ("netflix", "youtube", "spotify", "the photo album", "the weather app")
SCENES: Final = ("movie night", "good morning", "good night", "dinner", "reading")
MERCHANTS: Final = ("the coffee shop", "the bakery", "the parking meter", "the canteen")

OUT_OF_DOMAIN: Final = (
    "order a pizza",
    "what is the weather like tomorrow",
    "call my mother",
    "tell me a joke",
    "book a table for two at eight",
    "how old is the president",
    "send a message to john",
    "remind me to buy milk",
    "what time does the bank open",
    "play some jazz music",
    "translate good morning into french",
    "how far away is the moon",
    "set an alarm for seven tomorrow",
    "read me the news",
    "find a recipe for pancakes",
    "who won the football game last night",
    "buy a pair of running shoes",
    "turn left at the next corner",
    "the cat is sleeping on the sofa",
    "i would like a cup of tea",
    "turn on the washing machine",
    "open the window in the attic",
    "set the oven to two hundred degrees",
    "water the plants in the garden",
    "what is the capital of australia",
    "start the car and warm it up",
    "is it going to rain this afternoon",
    "show me pictures of cats",
    "how do you spell necessary",
    "good evening everybody",
)


@dataclass(frozen=True, eq=False)
class Utterance:
    """One rendered item: what was said, what the recogniser should answer ("" = reject), and the audio."""

    id: str
    said: str
    expected: str
    voice: str
    speed: int
    noise: Noise
    snr_db: float | None
    audio: Audio
    speech_start_s: float
    speech_end_s: float

    @property
    def in_domain(self) -> bool:
        return bool(self.expected)

    @property
    def speech_seconds(self) -> float:
        return self.speech_end_s - self.speech_start_s


def home_grammar() -> list[str]:
    """The evaluation grammar: home control, TV, scenes, timers, questions and payments (867 sentences)."""
    out: list[str] = []
    for room, device in itertools.product(ROOMS, DEVICES):
        for verb in ("turn on", "turn off", "switch on", "switch off"):
            out.append(f"{verb} the {room} {device}")
    for room in ROOMS:
        out += [f"set the {room} thermostat to {n} degrees" for n in range(16, 31)]
        out += [f"set the {room} lights to {n} percent" for n in range(10, 101, 10)]
        out += [f"what is the temperature in the {room}", f"is the {room} light on"]
    out += [f"set the thermostat to {n} degrees" for n in range(16, 31)]
    out += [f"play channel {n} on the tv" for n in range(1, 41)]
    out += [f"switch the tv to channel {n}" for n in range(1, 41)]
    out += [f"set the volume to {n}" for n in range(0, 21)]
    out += ["turn the volume up", "turn the volume down", "mute the tv", "pause the tv", "resume the tv"]
    out += [f"open {app} on the tv" for app in APPS]
    out += [f"activate the {scene} scene" for scene in SCENES]
    out += [f"start a timer for {n} minutes" for n in range(1, 61)]
    out += ["lock the front door", "unlock the front door", "close the garage door", "open the garage door"]
    out += [f"pay {n} yuan to {m}" for n in range(1, 51) for m in MERCHANTS]
    return list(dict.fromkeys(out))


def sample_commands(n: int, *, seed: int = 0, grammar: Sequence[str] | None = None) -> list[str]:
    """``n`` different sentences of the grammar, spread over its kinds of sentence (deterministic by seed)."""
    sentences = list(grammar if grammar is not None else home_grammar())
    rng = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    for s in sentences:
        by_kind.setdefault(" ".join(s.split()[:2]), []).append(s)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    for pool in by_kind.values():
        rng.shuffle(pool)
    picked: list[str] = []
    while len(picked) < min(n, len(sentences)):
        for kind in kinds:
            if by_kind[kind] and len(picked) < n:
                picked.append(by_kind[kind].pop())
    return picked


def add_noise(
    clean: npt.NDArray[np.float32],
    snr_db: float,
    kind: Noise,
    rng: np.random.Generator,
    babble: Sequence[npt.NDArray[np.float32]] = (),
) -> npt.NDArray[np.float32]:
    """``clean`` plus noise whose power is ``snr_db`` below the speech's (measured where the speech is active)."""
    if kind == "none":
        return clean
    active = clean[np.abs(clean) > 0.01 * max(1e-9, float(np.abs(clean).max()))]
    speech_power = float(np.mean(active**2)) if len(active) else 1e-6
    noise = _noise(len(clean), kind, rng, babble)
    noise_power = float(np.mean(noise**2)) or 1e-12
    gain = float(np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10))))
    out: npt.NDArray[np.float32] = (clean + gain * noise).astype(np.float32)
    return out


def _noise(
    n: int, kind: Noise, rng: np.random.Generator, babble: Sequence[npt.NDArray[np.float32]]
) -> npt.NDArray[np.float32]:
    if kind == "white":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        return np.asarray(np.fft.irfft(spectrum / np.sqrt(f), n), dtype=np.float32)
    if kind == "babble":
        if not babble:
            raise ValueError("babble noise needs other speech")
        mix = np.zeros(n, dtype=np.float32)
        for i in range(3):
            voice = babble[int(rng.integers(len(babble)))]
            reps = np.tile(voice, n // max(1, len(voice)) + 2)
            start = int(rng.integers(len(voice))) if len(voice) else 0
            mix += np.asarray(reps[start + i : start + i + n], dtype=np.float32)
        return mix
    raise ValueError(f"unknown noise {kind!r}")


async def render(
    commands: Iterable[str],
    *,
    out_of_domain: Iterable[str] = (),
    voices: Sequence[str] = VOICES[:2],
    speeds: Sequence[int] = (175,),
    noise: Noise = "pink",
    snr_db: float | None = 15.0,
    seed: int = 0,
    tts: EspeakTTS | None = None,
    concurrency: int = 4,
) -> list[Utterance]:
    """Speak every command and out-of-domain sentence in every voice and speed, with quiet around and noise."""
    tts = tts or EspeakTTS()
    items = [(s, s) for s in commands] + [(s, "") for s in out_of_domain]
    jobs = [(said, expected, v, sp) for said, expected in items for v in voices for sp in speeds]
    gate = asyncio.Semaphore(max(1, concurrency))

    async def speak(text: str, voice: str, speed: int) -> npt.NDArray[np.float32]:
        async with gate:
            speech = await tts.synthesize(text, language=voice, speed=speed)
        return _trim_zeros(speech.audio.as_float())

    clean = await asyncio.gather(*(speak(said, v, sp) for said, _, v, sp in jobs))
    rng = np.random.default_rng(seed)
    out: list[Utterance] = []
    for i, ((said, expected, voice, speed), speech) in enumerate(zip(jobs, clean, strict=True)):
        lead = int(rng.uniform(0.3, 0.6) * SAMPLE_RATE)
        tail = int(rng.uniform(0.6, 0.9) * SAMPLE_RATE)
        x = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
        if snr_db is not None:
            others = [clean[j] for j in rng.choice(len(clean), size=min(6, len(clean)), replace=False) if j != i]
            x = add_noise(x, snr_db, noise, rng, others or [speech])
        peak = float(np.abs(x).max()) or 1.0
        if peak > 0.99:
            x = x * (0.99 / peak)
        out.append(
            Utterance(
                id=f"{i:04d}",
                said=said,
                expected=expected,
                voice=voice,
                speed=speed,
                noise=noise if snr_db is not None else "none",
                snr_db=snr_db,
                audio=Audio.from_float(x),
                speech_start_s=lead / SAMPLE_RATE,
                speech_end_s=(lead + len(speech)) / SAMPLE_RATE,
            )
        )
    return out


def _trim_zeros(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """espeak-ng's output without its leading and trailing quiet, so the speech times are exact."""
    loud = np.nonzero(np.abs(x) > 1e-3)[0]
    if len(loud) == 0:
        return x
    return x[int(loud[0]) : int(loud[-1]) + 1]
