"""Slot lists from a person's home: the names a sentence may use.

``home_slots`` reads what the caller may see of one home: its rooms (``area``), their devices (``name``, each
with its Home Assistant domain as context so "set the thermostat to 21" only matches a climate device), the
scenes they may run (``scene``), the merchants they can pay (``merchant``) and the apps and games a TV can
launch (``app``, ``game``). ``Slots`` is a frozen value: the hassil lists built from it are cached, so a home
that did not change costs nothing to recognise against again.

Merchants: there is no merchant directory yet, so every merchant of the hub is listed (names only; the
payment itself still needs the person's confirmation on their device).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hassil import SlotList, TextSlotList, TextSlotValue
from hassil.expression import TextChunk
from hassil.util import normalize_text

from tosplus.core.thing_model import ThingModel
from tosplus.core.tokens import Principal
from tosplus.errors import NotFound
from tosplus.services.homes.access import Need
from tosplus.services.voice.understanding.loader import app_catalogue, normalize_language

if TYPE_CHECKING:
    from tosplus.app import Hub

# Kind → Home Assistant domain (what its sentences call it).
DOMAIN_OF_KIND = {
    "light": "light",
    "plug": "switch",
    "thermostat": "climate",
    "tv": "media_player",
    "speaker": "media_player",
}
# Words that name a device by its kind ("turn on the TV" when it is called "Samsung 55"). Lights are left out:
# "turn on the light" is a room's lights (Home Assistant's area sentences), not a device name.
KIND_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "tv": ("TV", "television", "telly"),
        "speaker": ("speaker", "smart speaker"),
        "thermostat": ("thermostat", "heating"),
        "plug": ("plug", "smart plug", "socket"),
        "fridge": ("fridge", "refrigerator"),
        "watch": ("watch", "smartwatch"),
        "phone": ("phone", "mobile"),
    },
    "zh-cn": {
        "tv": ("电视", "电视机"),
        "speaker": ("音箱", "音响", "智能音箱"),
        "thermostat": ("温控器", "恒温器"),
        "plug": ("插座", "智能插座"),
        "fridge": ("冰箱",),
        "watch": ("手表", "智能手表"),
        "phone": ("手机",),
    },
}
_MERCHANT_PLACES = {
    "en": ("shop", "store", "place", "cafe", "café", "restaurant"),
    "zh-cn": ("店",),
}
_SPECIAL = re.compile(r"[\[\]{}()<>|;]")
# The digits after a decimal point, as fen: ".5" is 50, ".05" is 5.
_DECIMALS = TextSlotList(
    name="decimal",
    values=[TextSlotValue(TextChunk(f"{n:02d}"), n) for n in range(100)]
    + [TextSlotValue(TextChunk(str(n)), n * 10) for n in range(10)],
)
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The same spoken, digit by digit after "point" ("nine point nine" is 9.90, "twelve point zero five" 12.05): how
# people read a price aloud, and all a speech engine's grammar can hear (it has no decimal point symbol).
_SPOKEN_DECIMALS = TextSlotList(
    name="decimal_words",
    values=[TextSlotValue(TextChunk(_DIGIT_WORDS[n]), n * 10) for n in range(10)]
    + [
        TextSlotValue(TextChunk(f"{_DIGIT_WORDS[a]} {_DIGIT_WORDS[b]}"), 10 * a + b)
        for a in range(10)
        for b in range(10)
    ],
)


def _catalogue_apps() -> tuple[tuple[str, str], ...]:
    return tuple((a["id"], a["kind"]) for a in app_catalogue())


def kind_of(model: ThingModel) -> str:
    """What a device is, from its thing model (not its product id: makers ship their own products)."""
    props, actions = model.properties, model.actions
    if "channel" in props or "set_channel" in actions:
        return "tv"
    if "say" in actions or ("play" in actions and "volume" in props):
        return "speaker"
    if "target_c" in props:
        return "thermostat"
    if "fridge_setpoint_c" in props:
        return "fridge"
    if "heart_rate" in props:
        return "watch"
    if "ring" in actions or "signal_dbm" in props:
        return "phone"
    if "on" in props and "brightness" in props:
        return "light"
    if "on" in props:
        return "plug"
    return "sensor"


@dataclass(frozen=True, slots=True)
class DeviceName:
    id: str
    name: str
    room: str | None  # the room's name
    kind: str  # light, plug, thermostat, tv, speaker, fridge, watch, phone, sensor

    @property
    def domain(self) -> str:
        return DOMAIN_OF_KIND.get(self.kind, "sensor")


@dataclass(frozen=True, slots=True)
class SceneName:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class MerchantName:
    id: str
    name: str
    currency: str


@dataclass(frozen=True, slots=True)
class Slots:
    """What one caller may name in one home. Hashable: recognition caches the slot lists built from it."""

    home_id: str | None = None
    rooms: tuple[str, ...] = ()
    devices: tuple[DeviceName, ...] = ()
    scenes: tuple[SceneName, ...] = ()
    merchants: tuple[MerchantName, ...] = ()
    apps: tuple[tuple[str, str], ...] = field(default_factory=lambda: _catalogue_apps())

    def devices_named(self, name: str, language: str) -> list[DeviceName]:
        """Devices called ``name``, or of the kind it names ("TV")."""
        wanted = normalize_text(name).casefold()
        exact = [d for d in self.devices if normalize_text(d.name).casefold() == wanted]
        if exact:
            return exact
        for kind, words in KIND_WORDS.get(normalize_language(language), {}).items():
            if wanted in (w.casefold() for w in words):
                return [d for d in self.devices if d.kind == kind]
        return []

    def in_room(self, room: str) -> list[DeviceName]:
        wanted = room.casefold()
        return [d for d in self.devices if d.room is not None and d.room.casefold() == wanted]

    def merchant(self, name: str) -> list[MerchantName]:
        wanted = name.casefold()
        return [m for m in self.merchants if m.name.casefold() == wanted]

    def scene(self, name: str) -> list[SceneName]:
        wanted = name.casefold()
        return [s for s in self.scenes if s.name.casefold() == wanted]


def _chunk(text: str) -> TextChunk:
    return TextChunk(normalize_text(_SPECIAL.sub(" ", text)))


def _values(pairs: list[tuple[str, Any, dict[str, Any] | None]]) -> list[TextSlotValue]:
    seen: set[str] = set()
    values = []
    for said, out, context in pairs:
        key = said.strip().casefold()
        if not key or key in seen:
            continue
        seen.add(key)
        values.append(TextSlotValue(text_in=_chunk(said), value_out=out, context=context))
    return values


def _merchant_aliases(merchants: tuple[MerchantName, ...], language: str) -> list[tuple[str, str]]:
    """ "the coffee shop" for Corner Coffee, when no other merchant has "coffee" in its name."""
    pairs: list[tuple[str, str]] = []
    words: dict[str, list[str]] = {}
    for m in merchants:
        if language == "zh-cn":
            continue
        for word in re.findall(r"[a-z]{4,}", m.name.casefold()):
            words.setdefault(word, []).append(m.name)
    for word, owners in words.items():
        if len(set(owners)) == 1:
            pairs.extend((f"{word} {place}", owners[0]) for place in _MERCHANT_PLACES["en"])
    return pairs


@functools.lru_cache(maxsize=512)
def slot_lists(slots: Slots, language: str) -> dict[str, SlotList]:
    """The hassil slot lists for ``slots`` in ``language`` (cached: per request only a dictionary lookup)."""
    language = normalize_language(language)
    names: list[tuple[str, Any, dict[str, Any] | None]] = []
    for d in slots.devices:
        names.append((d.name, d.name, {"domain": d.domain, "kind": d.kind}))
    kinds = {d.kind for d in slots.devices}
    for kind, words in KIND_WORDS.get(language, {}).items():
        if kind in kinds:
            context = {"domain": DOMAIN_OF_KIND.get(kind, "sensor"), "kind": kind}
            names.extend((word, words[0], context) for word in words)
    merchants: list[tuple[str, Any, dict[str, Any] | None]] = [(m.name, m.name, None) for m in slots.merchants]
    merchants.extend((alias, name, None) for alias, name in _merchant_aliases(slots.merchants, language))
    catalogue = {a["id"]: a for a in app_catalogue()}
    apps: list[tuple[str, Any, dict[str, Any] | None]] = []
    games: list[tuple[str, Any, dict[str, Any] | None]] = []
    for app_id, kind in slots.apps:
        spoken = catalogue.get(app_id, {}).get("names", {})
        for said in spoken.get(language, []) + spoken.get("en", []):
            (games if kind == "game" else apps).append((said, app_id, None))
    return {
        "area": TextSlotList(name="area", values=_values([(r, r, None) for r in slots.rooms])),
        "name": TextSlotList(name="name", values=_values(names)),
        "floor": TextSlotList(name="floor", values=[]),
        "scene": TextSlotList(name="scene", values=_values([(s.name, s.name, None) for s in slots.scenes])),
        "merchant": TextSlotList(name="merchant", values=_values(merchants)),
        "app": TextSlotList(name="app", values=_values(apps)),
        "game": TextSlotList(name="game", values=_values(games)),
        "decimal": _DECIMALS,
        "decimal_words": _SPOKEN_DECIMALS,
    }


async def home_slots(hub: Hub, principal: Principal, home_id: str) -> Slots:
    """The names ``principal`` may use in home ``home_id``: its rooms, the devices and scenes they may see, every
    merchant, the app catalogue. NotFound (as the API answers) when they may not see the home."""
    homes = hub.people.homes
    home = homes.home(home_id)
    member = None
    if not principal.is_operator:
        member = homes.membership(home_id, principal.id) if principal.user_id else None
        if member is None:
            raise NotFound(f"no home '{home_id}'")
    access = hub.people.access
    devices = []
    for device_id, room_id in home.devices.items():
        device = hub.registry.devices.get(device_id)
        if device is None or not access.can(principal, device_id, Need.SEE):
            continue
        model = hub.registry.model_of(device_id)
        room = home.rooms.get(room_id) if room_id else None
        devices.append(DeviceName(device_id, device.name, room, kind_of(model)))
    scenes: list[SceneName] = []
    if hub.scenes is not None:
        for scene in await hub.scenes.of_home(home_id):
            if member is None or all(member.allows(a.get("device_id", "")) for a in scene["actions"]):
                scenes.append(SceneName(scene["id"], scene["name"]))
    merchants = tuple(
        MerchantName(m.id, m.name, m.currency) for m in sorted(hub.payments.merchants.values(), key=lambda m: m.id)
    )
    return Slots(
        home_id=home_id,
        rooms=tuple(home.rooms.values()),
        devices=tuple(sorted(devices, key=lambda d: d.id)),
        scenes=tuple(sorted(scenes, key=lambda s: s.id)),
        merchants=merchants,
    )
