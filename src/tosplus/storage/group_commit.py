"""Group commit: many small writes from concurrent requests share one transaction.

Each caller waits until its write is committed, as if it had its own transaction; under load the writes that
queued while one transaction was being committed all go into the next, one ``executemany`` per statement. On
SQLite (one writer at a time) this turns a queue of short transactions into a few larger ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable


class GroupCommit:
    def __init__(self, engine: AsyncEngine, max_batch: int = 1000) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._pending: list[tuple[Executable, Mapping[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        """Run ``statement`` with ``params`` in the next group transaction; returns once it is committed.

        Pass the same statement object for writes that may share an ``executemany``.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((statement, params, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            groups: dict[int, tuple[Executable, list[Mapping[str, Any]]]] = {}
            for statement, params, _ in batch:
                groups.setdefault(id(statement), (statement, []))[1].append(params)
            try:
                async with self.engine.begin() as conn:
                    for statement, rows in groups.values():
                        await conn.execute(statement, rows)
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)
