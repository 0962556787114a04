"""Spoken timers: kept in memory per person and home (a timer does not survive a restart of the hub).

When one ends, the device the request was spoken to says so if it can speak (a ``say`` action, e.g. the
speaker); otherwise the end is only written to the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Timer:
    seconds: int
    ends_at: float  # loop.time()
    language: str
    device_id: str | None
    handle: asyncio.TimerHandle | None = None
    started_wall: float = field(default_factory=time.time)

    def left(self, now: float) -> int:
        return max(0, round(self.ends_at - now))


class Timers:
    def __init__(self) -> None:
        self.running: dict[tuple[str, str], list[Timer]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run what a timer's end does (say it, audit it) in the background."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(
        self, key: tuple[str, str], seconds: int, language: str, device_id: str | None, done: Callable[[Timer], Any]
    ) -> Timer:
        loop = asyncio.get_running_loop()
        timer = Timer(seconds, loop.time() + seconds, language, device_id)

        def fire() -> None:
            mine = self.running.get(key, [])
            if timer in mine:
                mine.remove(timer)
            done(timer)

        timer.handle = loop.call_later(seconds, fire)
        self.running.setdefault(key, []).append(timer)
        return timer

    def of(self, key: tuple[str, str]) -> list[Timer]:
        return list(self.running.get(key, []))

    def cancel(self, key: tuple[str, str], seconds: int | None = None, *, latest_only: bool = False) -> int:
        """Cancel the person's timers (of ``seconds`` only, when given; the latest of them with
        ``latest_only``); how many were canceled."""
        mine = self.running.get(key, [])
        chosen = [t for t in mine if seconds is None or t.seconds == seconds]
        if latest_only:
            chosen = chosen[-1:] or mine[-1:]
        for timer in chosen:
            if timer.handle is not None:
                timer.handle.cancel()
            mine.remove(timer)
        return len(chosen)

    def cancel_all(self) -> None:
        for mine in self.running.values():
            for timer in mine:
                if timer.handle is not None:
                    timer.handle.cancel()
        self.running.clear()


_BY_HUB: dict[int, Timers] = {}


def timers_of(hub: Any) -> Timers:
    """The hub's timers, made on first use and dropped (canceled) with the hub."""
    timers = _BY_HUB.get(id(hub))
    if timers is None:
        timers = _BY_HUB[id(hub)] = Timers()
        key = id(hub)

        def forget() -> None:
            gone = _BY_HUB.pop(key, None)
            if gone is not None:
                gone.cancel_all()

        weakref.finalize(hub, forget)
    return timers
