import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tosplus.errors import InvalidInput
from tosplus.gateway import codec, topics
from tosplus.gateway.topics import Kind


def test_topic_routes() -> None:
    assert topics.parse("tos/v1/dev1/telemetry") == topics.Route("dev1", Kind.TELEMETRY)
    assert topics.parse("tos/v1/dev1/twin/reported") == topics.Route("dev1", Kind.REPORTED)
    assert topics.parse("tos/v1/dev1/events/door") == topics.Route("dev1", Kind.EVENT, "door")
    assert topics.parse("tos/v1/dev1/commands/r1/response") == topics.Route("dev1", Kind.COMMAND_RESPONSE, "r1")
    assert topics.parse("tos/v1/dev1/status") == topics.Route("dev1", Kind.STATUS)
    for bad in (
        "tos/v2/dev1/telemetry",
        "tos/v1//telemetry",
        "tos/v1/dev1/twin/desired",
        "tos/v1/dev1/events/",
        "tos/v1/dev1/commands/r1",
        "other",
    ):
        assert topics.parse(bad) is None, bad


def test_telemetry_shapes() -> None:
    now = 1_700_000_000_000
    assert codec.telemetry_points({"t": 1}, now) == [(now, {"t": 1})]
    assert codec.telemetry_points({"ts": 5, "values": {"t": 1}}, now) == [(5, {"t": 1})]
    batch = codec.telemetry_points([{"t": 1}, {"ts": 7, "values": {"t": 2}}], now)
    assert batch == [(now, {"t": 1}), (7, {"t": 2})]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "empty"),
        ("hello", "must be a JSON object"),
        ({"ts": "soon", "values": {"t": 1}}, "ts must be an integer"),
        ({"ts": 1, "values": [1]}, "values must be a JSON object"),
        ({"ts": 1, "values": {"t": 1}, "extra": 1}, "unexpected keys"),
        ({"ts": 10**15, "values": {"t": 1}}, "not a plausible time"),
        ({}, "no values"),
        ([{"t": 1}, 5], r"telemetry\[1\] must be a JSON object"),
    ],
)
def test_bad_telemetry_explained(doc: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        codec.telemetry_points(doc, 1_700_000_000_000)


def test_malformed_json_says_where() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        codec.decode_json(b'{"t": ')


@given(st.binary(max_size=200))
def test_decoding_any_bytes_never_crashes(data: bytes) -> None:
    try:
        doc = codec.decode_json(data)
        codec.telemetry_points(doc, 1_700_000_000_000)
    except InvalidInput:
        pass


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()


@given(st.recursive(JSON_SCALARS, lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
def test_any_json_document_is_accepted_or_explained(doc: object) -> None:
    try:
        points = codec.telemetry_points(orjson.loads(orjson.dumps(doc)), 1_700_000_000_000)
        assert all(isinstance(values, dict) and values for _, values in points)
    except InvalidInput as exc:
        assert exc.detail
