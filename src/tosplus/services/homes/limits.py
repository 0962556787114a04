"""Counting failures per key (an account, a client address) in a sliding window, in memory.

Used where guessing must be slow: wrong binding codes and wrong invitation codes. A restart forgets the
counts; the codes' entropy (40+ bits) is what makes guessing hopeless, the limit keeps it so.
"""

from __future__ import annotations

import time
from collections import deque

from tosplus.errors import RateLimited


class FailureLimiter:
    def __init__(self, max_failures: int, window_s: float, what: str) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.what = what
        self._failures: dict[str, deque[float]] = {}

    def check(self, *keys: str) -> None:
        """Refuse with 429 when any key has used up its failures in the window."""
        now = time.monotonic()
        for key in keys:
            recent = self._recent(key, now)
            if len(recent) >= self.max_failures:
                wait = int(recent[0] + self.window_s - now) + 1
                raise RateLimited(f"too many wrong {self.what}; try again in {wait} s", retry_after_s=wait)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 100_000:  # forget idle keys so a flood of addresses cannot grow memory
            for key in [k for k, q in self._failures.items() if not q or q[-1] < now - self.window_s]:
                del self._failures[key]

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(key, deque())
        while recent and recent[0] < now - self.window_s:
            recent.popleft()
        return recent
