from __future__ import annotations

from pathlib import Path

import orjson

from tosplus.sdk import DeviceClient, MemoryOutbox, SqliteOutbox, outbox_path


def test_sqlite_outbox_keeps_order_across_reopen(tmp_path: Path) -> None:
    path = outbox_path(tmp_path, "dev/with:odd chars")
    assert path.parent == tmp_path and "/" not in path.name
    box = SqliteOutbox(path)
    ids = [box.append("t", f"m{i}".encode()) for i in range(5)]
    assert ids == sorted(ids) and len(box) == 5
    box.remove(ids[:2])
    box.close()
    box = SqliteOutbox(path)
    assert [e.payload for e in box.peek(10)] == [b"m2", b"m3", b"m4"]
    later = box.append("t", b"m5")
    assert later > ids[-1]
    assert [e.payload for e in box.peek(2)] == [b"m2", b"m3"]
    assert box._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    box.close()


def test_outboxes_drop_the_oldest_when_full(tmp_path: Path) -> None:
    for box in (MemoryOutbox(max_entries=3), SqliteOutbox(tmp_path / "x.sqlite3", max_entries=3)):
        for i in range(5):
            box.append("t", str(i).encode())
        assert len(box) == 3 and box.dropped == 2
        assert [e.payload for e in box.peek(10)] == [b"2", b"3", b"4"]
        box.remove([e.id for e in box.peek(10)])
        assert len(box) == 0 and box.peek(1) == []
        box.close()


async def test_a_backlog_goes_as_batches_and_events_keep_their_place() -> None:
    dev = DeviceClient("batcher", "s", port=1, reconnect_min_s=5, max_inflight=3, batch_max=4)
    async with dev:
        for seq in range(6):
            await dev.send_telemetry({"seq": seq}, ts_ms=1000 + seq)
        await dev.send_event("door_left_open", {"open_s": 60})
        await dev.send_telemetry({"seq": 6}, ts_ms=2000)
        messages = dev._next_messages()
        assert [topic.rsplit("/", 2)[-1] for topic, _, _ in messages] == ["telemetry", "telemetry", "door_left_open"]
        assert [len(ids) for _, _, ids in messages] == [4, 2, 1]  # max_inflight=3 messages, batch_max=4
        first = orjson.loads(messages[0][1])
        assert first == [{"ts": 1000 + i, "values": {"seq": i}} for i in range(4)]
        assert orjson.loads(messages[2][1]) == {"open_s": 60}
        assert dev._outbox is not None
        dev._outbox.remove(i for _, _, ids in messages for i in ids)
        (last,) = dev._next_messages()
        assert orjson.loads(last[1]) == {"ts": 2000, "values": {"seq": 6}}  # a single point is not an array
