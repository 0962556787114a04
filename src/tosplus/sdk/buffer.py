"""The device's outbox: messages kept until the broker acknowledges them.

Two implementations with the same small interface: :class:`SqliteOutbox` (a SQLite file in WAL mode, survives
a process restart or a reboot) and :class:`MemoryOutbox` (survives reconnects only). Entries come out oldest
first; an entry is removed only once the broker has acknowledged it (QoS 1 PUBACK).

Standard library only: this module is part of the device SDK.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("tosplus.sdk")


@dataclass(frozen=True, slots=True)
class Entry:
    """One buffered message; ``id`` grows with every append, so ids give the delivery order."""

    id: int
    topic: str
    payload: bytes


class Outbox(Protocol):
    def append(self, topic: str, payload: bytes) -> int: ...

    def peek(self, limit: int) -> list[Entry]: ...

    def remove(self, ids: Iterable[int]) -> None: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class MemoryOutbox:
    """Outbox in memory: keeps messages across reconnects, not across a restart."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._next = 1
        self._max = max_entries
        self.dropped = 0

    def append(self, topic: str, payload: bytes) -> int:
        entry = Entry(self._next, topic, payload)
        self._next += 1
        self._entries[entry.id] = entry
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
            self.dropped += 1
        return entry.id

    def peek(self, limit: int) -> list[Entry]:
        out: list[Entry] = []
        for entry in self._entries.values():
            if len(out) >= limit:
                break
            out.append(entry)
        return out

    def remove(self, ids: Iterable[int]) -> None:
        for entry_id in ids:
            self._entries.pop(entry_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        pass


def outbox_path(buffer_dir: Path, device_id: str) -> Path:
    """The SQLite file of one device in ``buffer_dir`` (one file per device, so devices never contend)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", device_id) or "device"
    return buffer_dir / f"{safe}.outbox.sqlite3"


class SqliteOutbox:
    """Outbox in a SQLite file (WAL mode): what was appended survives a crash or a restart of the process.

    ``synchronous=NORMAL`` in WAL mode never corrupts the file; on a power cut the last few appends may be
    lost. Pass ``durable=True`` for ``synchronous=FULL`` (an fsync per message) where that matters more
    than flash wear and speed.
    """

    def __init__(self, path: Path, max_entries: int = 100_000, *, durable: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max = max_entries
        self.dropped = 0
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " topic TEXT NOT NULL,"
            " payload BLOB NOT NULL,"
            " created_ms INTEGER NOT NULL)"
        )
        row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        self._count = int(row[0]) if row else 0
        if self._count:
            log.info("outbox %s holds %d messages from before", path, self._count)

    def append(self, topic: str, payload: bytes) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (topic, payload, created_ms) VALUES (?, ?, ?)",
            (topic, payload, int(time.time() * 1000)),
        )
        self._count += 1
        if self._count > self._max:
            excess = self._count - self._max
            self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)", (excess,))
            self._count -= excess
            self.dropped += excess
            log.warning("outbox %s is full: dropped the %d oldest messages", self.path, excess)
        return int(cur.lastrowid or 0)

    def peek(self, limit: int) -> list[Entry]:
        rows = self._db.execute("SELECT id, topic, payload FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Entry(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def remove(self, ids: Iterable[int]) -> None:
        id_list = list(ids)
        if not id_list:
            return
        self._db.execute("BEGIN")
        try:
            cur = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in id_list])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._count = max(0, self._count - max(cur.rowcount, 0))

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        self._db.close()
