"""Reading a client's WebSocket frames (RFC 6455 section 5) fast, for connections that carry 60 Hz input.

websockets' sans-I/O parser (what uvicorn uses) is correct and general, and costs about 4.6 µs a frame in
Python generators: at 30,000 game-pad frames a second that is 14 % of a core for parsing alone. This reader
does the same work for the one case the hub's session sockets need — frames from a client, without
extensions (no compression) — in one loop over the bytes with websockets' C unmasking, about 1 µs a frame.
Everything else of those connections stays websockets': the handshake, everything the hub sends, ping and
close frames' meaning (``Close.parse``). ``tosplus.api.ws_direct`` decides when a connection uses it.

What it checks, as RFC 6455 asks of a server: every frame masked; no reserved bit set (no extension was
agreed); control frames (close, ping, pong) at most 125 bytes and never fragmented; continuation frames only
inside a fragmented message and a new message only outside one; known opcodes; and, before waiting for the
rest of a frame, that the message fits ``max_size``. A failed check is a :class:`FrameError` with the close
code to send (1002 protocol error, 1009 too big).
"""

from __future__ import annotations

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets' wheels carry the C version
    from websockets.utils import apply_mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)


class FrameError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class FrameReader:
    """Bytes in (as they arrive, split anywhere), complete messages and control frames out, in order:
    ``feed`` returns ``(opcode, payload)`` pairs — ``TEXT``/``BINARY`` with a whole message (fragments joined;
    text not yet decoded), or ``CLOSE``/``PING``/``PONG`` with the frame's payload."""

    __slots__ = ("_buffer", "_fragments", "_fragments_opcode", "_fragments_size", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._fragments_opcode = 0  # TEXT or BINARY while a fragmented message is open
        self._fragments_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        view = self._buffer + data if self._buffer else data
        out: list[tuple[int, bytes]] = []
        end = len(view)
        pos = 0
        while end - pos >= 2:
            first, second = view[pos], view[pos + 1]
            head = pos + 2
            length = second & 0x7F
            if length == 126:
                if end - head < 2:
                    break
                length = int.from_bytes(view[head : head + 2], "big")
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                length = int.from_bytes(view[head : head + 8], "big")
                head += 8
            opcode = first & 0x0F
            fin = first & 0x80
            self._check(first, second, opcode, fin, length)
            stop = head + 4 + length
            if stop > end:
                break
            payload = apply_mask(view[head + 4 : stop], view[head : head + 4])
            pos = stop
            if opcode in _CONTROL or (fin and opcode):  # a control frame, or a message in one frame
                out.append((opcode, payload))
            elif opcode:  # the first fragment of a message
                self._fragments, self._fragments_opcode, self._fragments_size = [payload], opcode, length
            else:  # a continuation
                self._fragments.append(payload)
                self._fragments_size += length
                if fin:
                    out.append((self._fragments_opcode, b"".join(self._fragments)))
                    self._fragments, self._fragments_opcode, self._fragments_size = [], 0, 0
        self._buffer = view[pos:] if pos < end else b""
        return out

    def _check(self, first: int, second: int, opcode: int, fin: int, length: int) -> None:
        if not second & 0x80:
            raise FrameError(1002, "a client's frames must be masked")
        if first & 0x70:
            raise FrameError(1002, "reserved bits are set but no extension was agreed")
        if opcode in _CONTROL:
            if length > 125 or not fin:
                raise FrameError(1002, "control frames are at most 125 bytes and not fragmented")
            return
        if opcode in _DATA:
            if self._fragments_opcode:
                raise FrameError(1002, "a new message began inside a fragmented one")
            size = length
        elif opcode == CONT:
            if not self._fragments_opcode:
                raise FrameError(1002, "a continuation frame without a message to continue")
            size = self._fragments_size + length
        else:
            raise FrameError(1002, f"unknown opcode {opcode}")
        if size > self.max_size:
            raise FrameError(1009, f"messages are at most {self.max_size} bytes")
