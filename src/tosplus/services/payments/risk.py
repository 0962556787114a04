"""Risk controls at the counter beyond a token's own limits: how fast a device or a wallet may pay, and how
many bad pay codes a token may see before it is stopped.

- velocity: at most ``per_token_per_minute`` payments a minute from one device and ``per_wallet_per_minute``
  from one wallet (all its devices together): a stolen watch cannot be emptied at a row of tills;
- bad codes: a forged or expired code names a real token; after ``bad_codes_per_day`` of them the token is
  suspended (its owner resumes it). With ~1.2·10^-6 odds per guess (docs/payments-paycode.md), five guesses a
  day make guessing a live code a matter of centuries.

Counts are kept in memory by the one process that runs the counter; a restart forgets them (the daily limit in
the database still holds).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Window:
    limit: int
    seconds: float
    events: dict[str, deque[float]] = field(default_factory=dict)

    def count(self, key: str, now: float) -> int:
        recent = self.events.setdefault(key, deque())
        while recent and recent[0] <= now - self.seconds:
            recent.popleft()
        if not recent:
            del self.events[key]
        return len(recent)

    def add(self, key: str, now: float) -> int:
        self.count(key, now)
        self.events.setdefault(key, deque()).append(now)
        return len(self.events[key])


class RiskControls:
    def __init__(
        self, *, per_token_per_minute: int = 6, per_wallet_per_minute: int = 30, bad_codes_per_day: int = 5
    ) -> None:
        self._token = _Window(per_token_per_minute, 60.0)
        self._wallet = _Window(per_wallet_per_minute, 60.0)
        self._bad = _Window(bad_codes_per_day, 86_400.0)

    def velocity_refusal(self, token_id: str, user_id: str, now: float | None = None) -> str | None:
        """Why this payment must wait, or None; a payment let through is counted."""
        now = time.monotonic() if now is None else now
        if self._token.count(token_id, now) >= self._token.limit:
            return f"too many payments from this device (at most {self._token.limit} a minute)"
        if self._wallet.count(user_id, now) >= self._wallet.limit:
            return f"too many payments from this wallet (at most {self._wallet.limit} a minute)"
        self._token.add(token_id, now)
        self._wallet.add(user_id, now)
        return None

    def bad_code(self, token_id: str, now: float | None = None) -> bool:
        """Count a forged or expired code for the token; True when the token must now be suspended."""
        return self._bad.add(token_id, time.monotonic() if now is None else now) >= self._bad.limit
