"""Thing models: what a product's devices can report, be told and do.

The format follows the W3C WoT Thing Model (``properties``, ``events``, ``actions`` with data schemas), with a
few ``tos:`` terms of our own for what the hub needs to know about a product's fleet::

    {
      "@context": ["https://www.w3.org/2022/wot/td/v1.1", {"tos": "https://tosplus.org/ns#"}],
      "@type": "tm:ThingModel",
      "id": "tos:light", "title": "Smart light",
      "tos:category": "home", "tos:inactivityTimeoutS": 300, "tos:retentionDays": 30, "tos:screen": false,
      "properties": {"on": {"type": "boolean"}, "power_w": {"type": "number", "unit": "W", "readOnly": true}},
      "events": {"overheat": {"data": {"type": "object", "properties": {...}}}},
      "actions": {"blink": {"input": {...}, "output": {...}}}
    }

The validator is a small compiled checker for the WoT DataSchema subset we accept (type, minimum, maximum,
enum, minLength, maxLength, properties, required, items, readOnly, unit). It is hand-written because it runs on
the telemetry hot path for every value, and a general JSON-Schema engine costs several times more per value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tosplus.errors import InvalidInput

_TYPES = ("boolean", "integer", "number", "string", "object", "array", "null")
_KNOWN_TERMS = {
    "type",
    "minimum",
    "maximum",
    "enum",
    "unit",
    "readOnly",
    "writeOnly",
    "properties",
    "required",
    "items",
    "minLength",
    "maxLength",
    "title",
    "description",
    "observable",
    "const",
    "default",
    "@type",
    "format",
    "minItems",
    "maxItems",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "titles",
    "descriptions",
}


@dataclass(frozen=True, slots=True)
class DataSchema:
    """One WoT data schema, compiled for fast checks."""

    type: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    unit: str | None = None
    read_only: bool = False
    min_length: int | None = None
    max_length: int | None = None
    properties: Mapping[str, DataSchema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: DataSchema | None = None
    max_items: int | None = None

    def check(self, value: Any, path: str = "value") -> str | None:
        """Return why ``value`` does not fit, or ``None`` when it does."""
        kind = self.type
        if kind is not None:
            problem = _check_type(kind, value, path)
            if problem:
                return problem
        if self.enum is not None and value not in self.enum:
            return f"{path} must be one of {list(self.enum)}, got {value!r}"
        if kind in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                return f"{path} is {value}, below the minimum {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"{path} is {value}, above the maximum {self.maximum:g}"
        elif kind == "string":
            if self.min_length is not None and len(value) < self.min_length:
                return f"{path} is shorter than {self.min_length} characters"
            if self.max_length is not None and len(value) > self.max_length:
                return f"{path} is longer than {self.max_length} characters"
        elif kind == "object":
            for name in self.required:
                if name not in value:
                    return f"{path}.{name} is required"
            if self.properties:
                for key, item in value.items():
                    sub = self.properties.get(key)
                    if sub is None:
                        return f"{path}.{key} is not part of the model"
                    problem = sub.check(item, f"{path}.{key}")
                    if problem:
                        return problem
        elif kind == "array":
            if self.max_items is not None and len(value) > self.max_items:
                return f"{path} has more than {self.max_items} items"
            if self.items is not None:
                for index, item in enumerate(value):
                    problem = self.items.check(item, f"{path}[{index}]")
                    if problem:
                        return problem
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.type:
            out["type"] = self.type
        for key, attr in (
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("unit", "unit"),
            ("minLength", "min_length"),
            ("maxLength", "max_length"),
            ("maxItems", "max_items"),
        ):
            if getattr(self, attr) is not None:
                out[key] = getattr(self, attr)
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.read_only:
            out["readOnly"] = True
        if self.properties:
            out["properties"] = {k: v.to_json() for k, v in self.properties.items()}
        if self.required:
            out["required"] = list(self.required)
        if self.items is not None:
            out["items"] = self.items.to_json()
        return out


def _check_type(kind: str, value: Any, path: str) -> str | None:
    ok: bool
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    elif kind == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "object":
        ok = isinstance(value, dict)
    elif kind == "array":
        ok = isinstance(value, list)
    else:
        ok = value is None
    if ok:
        return None
    return f"{path} must be {_article(kind)}, got {_describe(value)}"


def _article(kind: str) -> str:
    return {"integer": "an integer", "object": "an object", "array": "an array", "null": "null"}.get(kind, f"a {kind}")


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"{'an object' if isinstance(value, dict) else 'an array'}"


def parse_schema(doc: Any, path: str) -> DataSchema:
    """Compile a WoT data schema, refusing what we would silently ignore."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} must be an object (a data schema)")
    unknown = set(doc) - _KNOWN_TERMS
    unknown = {key for key in unknown if ":" not in key}  # prefixed terms (tos:..., saref:...) are allowed
    if unknown:
        raise InvalidInput(f"{path} has unknown terms: {sorted(unknown)}")
    kind = doc.get("type")
    if kind is not None and kind not in _TYPES:
        raise InvalidInput(f"{path}.type must be one of {list(_TYPES)}")
    enum = doc.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise InvalidInput(f"{path}.enum must be a non-empty array")
    for bound in ("minimum", "maximum"):
        if bound in doc and not isinstance(doc[bound], int | float):
            raise InvalidInput(f"{path}.{bound} must be a number")
    if "minimum" in doc and "maximum" in doc and doc["minimum"] > doc["maximum"]:
        raise InvalidInput(f"{path}: minimum is above maximum")
    properties = doc.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidInput(f"{path}.properties must be an object")
    required = doc.get("required") or []
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise InvalidInput(f"{path}.required must be an array of names")
    items = doc.get("items")
    return DataSchema(
        type=kind,
        minimum=doc.get("minimum"),
        maximum=doc.get("maximum"),
        enum=tuple(enum) if enum is not None else None,
        unit=doc.get("unit"),
        read_only=bool(doc.get("readOnly", False)),
        min_length=doc.get("minLength"),
        max_length=doc.get("maxLength"),
        properties={k: parse_schema(v, f"{path}.properties.{k}") for k, v in properties.items()},
        required=tuple(required),
        items=parse_schema(items, f"{path}.items") if items is not None else None,
        max_items=doc.get("maxItems"),
    )


@dataclass(frozen=True, slots=True)
class Action:
    input: DataSchema | None
    output: DataSchema | None


@dataclass(frozen=True, slots=True)
class ThingModel:
    """A compiled thing model; ``document`` keeps the original JSON for the API."""

    id: str
    title: str
    properties: Mapping[str, DataSchema]
    events: Mapping[str, DataSchema | None]
    actions: Mapping[str, Action]
    inactivity_timeout_s: int
    retention_days: int
    category: str
    screen: bool
    document: Mapping[str, Any]

    def check_values(self, values: Mapping[str, Any]) -> str | None:
        """Telemetry or reported state: every key a property of the model, every value fitting it."""
        props = self.properties
        for key, value in values.items():
            schema = props.get(key)
            if schema is None:
                return f"'{key}' is not a property of {self.id}"
            problem = schema.check(value, key)
            if problem:
                return problem
        return None

    def check_desired(self, values: Mapping[str, Any]) -> str | None:
        """Desired state: like reported, and every key writable. ``None`` deletes a desired key."""
        for key, value in values.items():
            schema = self.properties.get(key)
            if schema is None:
                return f"'{key}' is not a property of {self.id}"
            if schema.read_only:
                return f"'{key}' is read-only on {self.id}"
            if value is not None:
                problem = schema.check(value, key)
                if problem:
                    return problem
        return None

    def check_event(self, name: str, payload: Any) -> str | None:
        if name not in self.events:
            return f"'{name}' is not an event of {self.id}"
        schema = self.events[name]
        return schema.check(payload, "data") if schema is not None else None

    def check_action(self, name: str, params: Any) -> str | None:
        action = self.actions.get(name)
        if action is None:
            return f"'{name}' is not an action of {self.id}"
        if action.input is None:
            if params not in (None, {}):
                return f"action '{name}' takes no parameters"
            return None
        return action.input.check(params, "params")


def parse_thing_model(doc: Any) -> ThingModel:
    """Compile a thing model document; raises :class:`InvalidInput` saying what is wrong."""
    if not isinstance(doc, dict):
        raise InvalidInput("a thing model must be a JSON object")
    model_id = doc.get("id")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidInput("thing model needs an 'id' string")
    title = doc.get("title")
    if not isinstance(title, str) or not title:
        raise InvalidInput("thing model needs a 'title' string")
    for section in ("properties", "events", "actions"):
        if not isinstance(doc.get(section, {}), dict):
            raise InvalidInput(f"'{section}' must be an object")
    properties = {k: parse_schema(v, f"properties.{k}") for k, v in doc.get("properties", {}).items()}
    events: dict[str, DataSchema | None] = {}
    for name, event in doc.get("events", {}).items():
        if not isinstance(event, dict):
            raise InvalidInput(f"events.{name} must be an object")
        events[name] = parse_schema(event["data"], f"events.{name}.data") if "data" in event else None
    actions: dict[str, Action] = {}
    for name, action in doc.get("actions", {}).items():
        if not isinstance(action, dict):
            raise InvalidInput(f"actions.{name} must be an object")
        actions[name] = Action(
            input=parse_schema(action["input"], f"actions.{name}.input") if "input" in action else None,
            output=parse_schema(action["output"], f"actions.{name}.output") if "output" in action else None,
        )
    timeout = doc.get("tos:inactivityTimeoutS", 600)
    retention = doc.get("tos:retentionDays", 30)
    if not isinstance(timeout, int) or timeout < 5:
        raise InvalidInput("tos:inactivityTimeoutS must be an integer of at least 5 seconds")
    if not isinstance(retention, int) or retention < 1:
        raise InvalidInput("tos:retentionDays must be a positive integer")
    return ThingModel(
        id=model_id,
        title=title,
        properties=properties,
        events=events,
        actions=actions,
        inactivity_timeout_s=timeout,
        retention_days=retention,
        category=str(doc.get("tos:category", "home")),
        screen=bool(doc.get("tos:screen", False)),
        document=doc,
    )
