"""The intents a language understands: Home Assistant's sentence set, narrowed to what TOS+ can do, plus ours.

Home Assistant's intents (``home-assistant-intents``, parsed by ``hassil``; the two are pinned together) bring
home control in many phrasings: lights, switches, climate, media players, timers, the time. We keep the
intents we act on, drop the sentence blocks for kinds of device we have no model of (covers, locks, fans,
valves, vacuums...), every sentence with a wildcard (free text such as a timer's name or a search query would
turn out-of-domain requests into actions) and every sentence about floors (homes have rooms only).

Our own templates, in the same YAML format, live in ``sentences/<language>/*.yaml``: payments, TV and media,
games, scenes, queries, and more phrasings of Home Assistant's intents. Their data blocks are appended to the
intents of the same name. Parsed intents are cached per language: the first request pays ~0.1 s, later ones
nothing.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml
from hassil import Intents
from hassil.parse_expression import parse_sentence
from home_assistant_intents import get_intents

LANGUAGES = ("en", "zh-cn")
_HA_CODE = {"en": "en", "zh-cn": "zh-CN"}

# Home Assistant intents TOS+ acts on (services/voice/actions.py); the others are left out.
HA_INTENTS = frozenset(
    {
        "HassTurnOn",
        "HassTurnOff",
        "HassLightSet",
        "HassClimateSetTemperature",
        "HassClimateGetTemperature",
        "HassGetState",
        "HassMediaPause",
        "HassMediaUnpause",
        "HassMediaNext",
        "HassMediaPrevious",
        "HassSetVolume",
        "HassSetVolumeRelative",
        "HassMediaPlayerMute",
        "HassMediaPlayerUnmute",
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassTimerStatus",
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassNevermind",
    }
)
OURS = "tos"  # metadata key of our templates' blocks
# Home Assistant domains our devices map to (understanding/slots.py gives every device one).
DOMAINS = frozenset({"light", "switch", "climate", "media_player", "sensor"})


def normalize_language(language: str | None) -> str:
    """``en``, ``en-US``, ``EN_gb`` → ``en``; ``zh``, ``zh-CN``, ``zh_Hans`` → ``zh-cn``; others unchanged."""
    code = (language or "en").strip().lower().replace("_", "-")
    if code == "zh" or code.startswith(("zh-cn", "zh-hans", "zh-sg")):
        return "zh-cn"
    if code.startswith("en"):
        return "en"
    return code


def ha_language(language: str) -> str:
    """The code of ``language`` in Home Assistant's data (``zh-cn`` → ``zh-CN``)."""
    return _HA_CODE[language]


def _sentences_dir(language: str) -> Any:
    return resources.files("tosplus.services.voice.understanding").joinpath("sentences", language)


def our_templates(language: str) -> dict[str, Any]:
    """Our intent templates for ``language``, every file of its directory merged (sorted by file name)."""
    merged: dict[str, Any] = {"intents": {}, "lists": {}, "expansion_rules": {}, "skip_words": []}
    folder = _sentences_dir(language)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        doc = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        for name, intent in (doc.get("intents") or {}).items():
            merged["intents"].setdefault(name, {"data": []})["data"].extend(intent["data"])
        merged["lists"].update(doc.get("lists") or {})
        merged["expansion_rules"].update(doc.get("expansion_rules") or {})
        merged["skip_words"].extend(doc.get("skip_words") or [])
    return merged


def _domains(value: Any) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else {str(v) for v in value}


def _keep_block(data: dict[str, Any]) -> bool:
    fixed = _domains((data.get("slots") or {}).get("domain"))
    if fixed is not None and not fixed & DOMAINS:
        return False
    required = _domains((data.get("requires_context") or {}).get("domain"))
    return required is None or bool(required & DOMAINS)


def _range_key_workaround(lists: dict[str, Any]) -> None:
    """hassil caches the words of a number range by (from, to, step, fractions), without the multiplier: the
    first of ``volume_step_down`` (times -1) and ``brightness`` (same range) to be spoken would lend its values to
    the other ("fifty percent" → -50). Give every multiplied range an end of its own so they never share."""
    for body in lists.values():
        bounds = body.get("range") if isinstance(body, dict) else None
        if bounds and bounds.get("multiplier") not in (None, 1):
            bounds["to"] = int(bounds["to"]) + 1


def intents_dict(language: str) -> dict[str, Any]:
    """The merged intents document for ``language`` (Home Assistant's, narrowed, plus ours)."""
    language = normalize_language(language)
    if language not in LANGUAGES:
        raise ValueError(f"voice understanding speaks {', '.join(LANGUAGES)}, not {language!r}")
    ha = get_intents(ha_language(language))
    if ha is None:  # pragma: no cover - the pinned package carries both languages
        raise RuntimeError(f"home-assistant-intents has no {language} sentences")
    ours = our_templates(language)
    lists: dict[str, Any] = {**ha.get("lists", {}), **ours["lists"]}
    rules_text: dict[str, str] = {**ha.get("expansion_rules", {}), **ours["expansion_rules"]}
    _range_key_workaround(lists)
    wildcards = {name for name, body in lists.items() if isinstance(body, dict) and body.get("wildcard")}
    rules = {name: parse_sentence(body, keep_text=True) for name, body in rules_text.items()}
    intents: dict[str, Any] = {}
    for name, intent in ha["intents"].items():
        if name not in HA_INTENTS:
            continue
        blocks = []
        for data in intent["data"]:
            if not _keep_block(data):
                continue
            own = data.get("expansion_rules") or {}
            local = rules | {k: parse_sentence(v, keep_text=True) for k, v in own.items()}
            kept = []
            for text in data["sentences"]:
                used = set(parse_sentence(text, keep_text=True).list_names(local))
                if not used & wildcards and "floor" not in used:
                    kept.append(text)
            if kept:
                blocks.append({**data, "sentences": kept})
        if blocks:
            intents[name] = {"data": blocks}
    for name, intent in ours["intents"].items():
        # Marked ours: when one of our templates and one of Home Assistant's both match, ours is meant.
        blocks = [{**data, "metadata": {**(data.get("metadata") or {}), OURS: True}} for data in intent["data"]]
        intents.setdefault(name, {"data": []})["data"].extend(blocks)
    return {
        "language": ha_language(language),
        "settings": ha.get("settings", {}),
        "skip_words": [*ha.get("skip_words", []), *ours["skip_words"]],
        "intents": intents,
        "lists": lists,
        "expansion_rules": rules_text,
    }


@functools.cache
def load_intents(language: str) -> Intents:
    """Parsed intents for ``language`` (``en`` or ``zh-cn``), built once per process."""
    return Intents.from_dict(intents_dict(language))


@functools.cache
def app_catalogue() -> tuple[dict[str, Any], ...]:
    """Apps and games a TV can launch by voice (``sentences/apps.yaml``): ``{"id", "kind", "names": {lang: [...]}}``.
    The smart TV's thing model takes any app id and lists none, so the catalogue is ours."""
    path = resources.files("tosplus.services.voice.understanding").joinpath("sentences", "apps.yaml")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(doc["apps"])
