import pytest
from hypothesis import given
from hypothesis import strategies as st

from tosplus.core.thing_model import parse_schema, parse_thing_model
from tosplus.errors import InvalidInput

LAMP = {
    "id": "tos:test-lamp",
    "title": "Test lamp",
    "tos:inactivityTimeoutS": 60,
    "properties": {
        "on": {"type": "boolean"},
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100, "unit": "percent"},
        "mode": {"type": "string", "enum": ["white", "color"]},
        "power_w": {"type": "number", "readOnly": True, "unit": "W"},
        "color": {"type": "object", "properties": {"r": {"type": "integer"}}, "required": ["r"]},
    },
    "events": {"overheat": {"data": {"type": "object", "properties": {"temp_c": {"type": "number"}}}}},
    "actions": {
        "blink": {"input": {"type": "object", "properties": {"times": {"type": "integer", "minimum": 1}}}},
        "reboot": {},
    },
}


def test_values_are_checked_against_type_range_enum_and_keys() -> None:
    model = parse_thing_model(LAMP)
    assert model.check_values({"on": True, "brightness": 40, "mode": "white", "power_w": 3.5}) is None
    assert "must be a boolean" in model.check_values({"on": "yes"})
    assert "above the maximum" in model.check_values({"brightness": 101})
    assert "below the minimum" in model.check_values({"brightness": -1})
    assert "must be one of" in model.check_values({"mode": "disco"})
    assert "not a property" in model.check_values({"colour": 1})
    assert "must be an integer" in model.check_values({"brightness": 4.5})
    assert "must be a number" in model.check_values({"power_w": True})
    assert "color.r is required" in model.check_values({"color": {}})


def test_desired_refuses_read_only_and_allows_removal() -> None:
    model = parse_thing_model(LAMP)
    assert "read-only" in model.check_desired({"power_w": 3})
    assert model.check_desired({"brightness": None}) is None
    assert model.check_desired({"brightness": 10}) is None


def test_events_and_actions() -> None:
    model = parse_thing_model(LAMP)
    assert model.check_event("overheat", {"temp_c": 80.5}) is None
    assert "not an event" in model.check_event("melt", {})
    assert "must be a number" in model.check_event("overheat", {"temp_c": "hot"})
    assert model.check_action("blink", {"times": 3}) is None
    assert "below the minimum" in model.check_action("blink", {"times": 0})
    assert model.check_action("reboot", None) is None
    assert "takes no parameters" in model.check_action("reboot", {"now": True})
    assert "not an action" in model.check_action("explode", {})


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"id": ""}, "'id'"),
        ({"properties": {"x": {"type": "decimal"}}}, "type must be one of"),
        ({"properties": {"x": {"type": "number", "minimum": 5, "maximum": 1}}}, "minimum is above maximum"),
        ({"properties": {"x": {"type": "number", "maxValue": 5}}}, "unknown terms"),
        ({"properties": {"x": {"enum": []}}}, "non-empty"),
        ({"tos:inactivityTimeoutS": 1}, "inactivityTimeoutS"),
    ],
)
def test_bad_models_are_refused_with_a_reason(patch: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_thing_model({**LAMP, **patch})


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers()),
    )
)
def test_checker_never_raises_on_any_json_value(value: object) -> None:
    schema = parse_schema({"type": "integer", "minimum": 0, "maximum": 10}, "x")
    result = schema.check(value)
    assert result is None or isinstance(result, str)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10:
        assert result is None
