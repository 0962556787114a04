"""The fast frame reader against websockets' own client: whatever a client sends, split anywhere, comes out as
the same messages and control frames; every frame a server must refuse is refused with the right close code."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import OP_BINARY, OP_CONT, OP_TEXT, Frame
from websockets.protocol import State
from websockets.uri import parse_uri

from tosplus.api.ws_frames import BINARY, CLOSE, PING, PONG, TEXT, FrameError, FrameReader


def client() -> ClientProtocol:
    """A client protocol past its handshake: what it sends is masked frames, as a browser's are."""
    protocol = ClientProtocol(parse_uri("ws://hub/api/v1/sessions/x/ws"))
    protocol.state = State.OPEN
    return protocol


def wire(protocol: ClientProtocol) -> bytes:
    return b"".join(protocol.data_to_send())


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out += reader.feed(data[start:cut])
        start = cut
    return out


message = st.one_of(
    st.tuples(st.just(TEXT), st.text(max_size=300).map(str.encode)),
    st.tuples(st.just(BINARY), st.binary(max_size=300)),
    st.tuples(st.just(BINARY), st.integers(120, 70_000).map(lambda n: (bytes(range(256)) * (n // 256 + 1))[:n])),
    st.tuples(st.just(PING), st.binary(max_size=125)),
    st.tuples(st.just(PONG), st.binary(max_size=125)),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(message, st.integers(1, 4)), min_size=1, max_size=12),
    st.lists(st.integers(0, 200_000), max_size=20),
)
def test_what_a_client_sends_comes_out_whole_and_in_order_however_it_is_split(
    messages: list[tuple[tuple[int, bytes], int]], cuts: list[int]
) -> None:
    protocol = client()
    expected: list[tuple[int, bytes]] = []
    for (opcode, payload), pieces in messages:
        expected.append((opcode, payload))
        if opcode == PING:
            protocol.send_ping(payload)
        elif opcode == PONG:
            protocol.send_pong(payload)
        elif pieces == 1 or len(payload) < pieces:
            (protocol.send_text if opcode == TEXT else protocol.send_binary)(payload)
        else:  # fragmented: a first frame and continuations
            size = len(payload) // pieces
            parts = [payload[i * size : (i + 1) * size] for i in range(pieces - 1)] + [payload[(pieces - 1) * size :]]
            protocol.send_frame(Frame(OP_TEXT if opcode == TEXT else OP_BINARY, parts[0], fin=False))
            for i, part in enumerate(parts[1:], 2):
                protocol.send_frame(Frame(OP_CONT, part, fin=i == pieces))
    assert feed_in_pieces(FrameReader(1 << 20), wire(protocol), cuts) == expected


def test_pings_may_come_between_the_fragments_of_a_message() -> None:
    protocol = client()
    protocol.send_frame(Frame(OP_TEXT, b"hel", fin=False))
    protocol.send_ping(b"are you there")
    protocol.send_frame(Frame(OP_CONT, b"lo", fin=True))
    assert FrameReader(100).feed(wire(protocol)) == [(PING, b"are you there"), (TEXT, b"hello")]


def test_a_close_frame_comes_out_with_its_payload() -> None:
    protocol = client()
    protocol.send_close(4000, "bye")
    assert FrameReader(100).feed(wire(protocol)) == [(CLOSE, b"\x0f\xa0bye")]


def refused(data: bytes, max_size: int = 1 << 20) -> FrameError:
    with pytest.raises(FrameError) as error:
        FrameReader(max_size).feed(data)
    return error.value


def test_frames_a_server_must_refuse_are_refused_with_their_close_code() -> None:
    mask = b"\x01\x02\x03\x04"
    assert refused(b"\x81\x02hi").code == 1002  # not masked
    assert refused(b"\xc1\x82" + mask + b"hi").code == 1002  # RSV1 (compression) without an extension
    assert refused(b"\x89\xfe\x00\x7e" + mask + bytes(126)).code == 1002  # a ping over 125 bytes
    assert refused(b"\x09\x80" + mask).code == 1002  # a fragmented ping
    assert refused(b"\x80\x80" + mask).code == 1002  # a continuation with nothing to continue
    assert refused(b"\x01\x80" + mask + b"\x81\x80" + mask).code == 1002  # a new message inside a fragmented one
    assert refused(b"\x83\x80" + mask).code == 1002  # opcode 3 is reserved


def test_a_message_too_big_is_refused_before_its_bytes_arrive() -> None:
    head = b"\x82\xff" + (10_000_000).to_bytes(8, "big")  # announces 10 MB; nothing of it sent yet
    error = refused(head, max_size=1 << 20)
    assert error.code == 1009 and "1048576" in error.reason
    reader = FrameReader(10)  # fragments count together
    protocol = client()
    protocol.send_frame(Frame(OP_BINARY, b"123456", fin=False))
    protocol.send_frame(Frame(OP_CONT, b"789012", fin=True))
    with pytest.raises(FrameError) as error_info:
        reader.feed(wire(protocol))
    assert error_info.value.code == 1009
