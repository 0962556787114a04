"""Pairing relayed by the hub: the screen shows a code, the phone proves it knows it with SPAKE2, and the hub
carries the messages between them without ever holding the code or the key.

The hub's part (docs/sessions.md has the whole flow):

- a **window**: the screen says it shows a code (``pairing.open``); the window lives at most 5 minutes, takes one
  attempt at a time and at most 5 attempts, and closes when a pairing succeeds (``used``), when it expires, or
  when its attempts are used up (``burnt``) — the screen is told ``pairing.closed`` and shows a new code;
- an **attempt**: the phone's SPAKE2 message goes to the screen (``pair.request``), the screen's answer and
  confirmation come back to the phone, the phone's confirmation goes to the screen (``pair.confirm``), and the
  screen's verdict (``pair.verdict``) decides. Only then does the hub open a session and record the credential;
- **limits**: a person may miss 20 pairings in 10 minutes (a wrong code, an abandoned attempt); an attempt not
  confirmed within 30 s is a miss.

Nothing here is logged with a message's content: SPAKE2 messages and MACs are passed on, never kept past the
attempt, and the code and the key never reach the hub.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tosplus.core.ids import new_id, now_ms
from tosplus.core.tokens import Principal
from tosplus.errors import Conflict, Forbidden, InvalidInput, NotFound, TosError
from tosplus.sdk.pairing import CODE_TTL_S, MAX_ATTEMPTS, unb64
from tosplus.services.homes.homes import GUEST
from tosplus.services.homes.limits import FailureLimiter
from tosplus.services.sessions.store import Credential

if TYPE_CHECKING:
    from tosplus.services.sessions.sessions import Screen, Sessions

ANSWER_TIMEOUT_S = 5.0  # how long the hub waits for the screen's answer or verdict
CONFIRM_WITHIN_S = 30.0  # an attempt the phone does not confirm in time is a miss
PERSON_MISSES = 20
PERSON_WINDOW_S = 600
MESSAGE_BYTES = 33  # SPAKE2 (Ed25519 group) messages: a side byte and a point
MAC_BYTES = 32


class PairingRefused(Forbidden):
    """The screen did not accept the phone's confirmation: the code (or credential) was wrong."""


@dataclass(eq=False, slots=True)
class Window:
    id: str
    expires_at: float  # monotonic
    attempts: int = 0
    current: Attempt | None = None


@dataclass(eq=False, slots=True)
class Attempt:
    id: str
    screen: Screen
    caller: Principal
    user_id: str
    user_name: str
    name: str
    home_id: str
    guest: bool
    client: str
    credential: Credential | None
    new_credential_id: str | None
    started: float
    answer: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    verdict: asyncio.Future[bool] | None = None
    confirming: bool = False


class Pairings:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.attempts: dict[str, Attempt] = {}
        self.misses = FailureLimiter(PERSON_MISSES, PERSON_WINDOW_S, "pairing attempts")
        self.max_attempts = MAX_ATTEMPTS
        self.window_s = float(CODE_TTL_S)
        self.answer_timeout_s = ANSWER_TIMEOUT_S
        self.confirm_within_s = CONFIRM_WITHIN_S

    @property
    def _now(self) -> float:
        return self.sessions.clock()

    # -- windows (the screen shows a code) ------------------------------------------------------------------

    def open_window(self, screen: Screen, expires_in_s: Any = None) -> Window:
        """The screen shows a new code: a fresh window (any earlier one is closed, its attempt abandoned)."""
        try:
            ttl = min(float(expires_in_s), self.window_s) if expires_in_s is not None else self.window_s
        except (TypeError, ValueError):
            ttl = self.window_s
        self.close_window(screen, "replaced", tell=False)
        window = screen.window = Window(new_id("pw"), self._now + max(ttl, 1.0))
        screen.tell(
            {
                "type": "pairing.opened",
                "window_id": window.id,
                "expires_at": now_ms() + int(max(ttl, 1.0) * 1000),
                "max_attempts": self.max_attempts,
            }
        )
        return window

    def close_window(self, screen: Screen, reason: str, *, tell: bool) -> None:
        window, screen.window = screen.window, None
        if window is None:
            return
        if window.current is not None and reason != "used":
            self._fail(window.current, "window_closed", count=reason in ("expired", "burnt"))
        if tell:
            screen.tell({"type": "pairing.closed", "window_id": window.id, "reason": reason})

    def screen_gone(self, screen: Screen) -> None:
        """The screen's connection dropped: its credential attempts cannot be answered any more."""
        for attempt in [a for a in self.attempts.values() if a.screen is screen]:
            self._fail(attempt, "screen_offline", count=False)

    def sweep(self, screen: Screen, now: float) -> None:
        window = screen.window
        if window is not None and now >= window.expires_at:
            self.close_window(screen, "expired", tell=True)
        for attempt in [a for a in self.attempts.values() if a.screen is screen]:
            if not attempt.confirming and now - attempt.started > self.confirm_within_s:
                self._fail(attempt, "not_confirmed", count=True)

    # -- the phone's side -----------------------------------------------------------------------------------

    async def start(
        self,
        caller: Principal,
        device_id: str,
        msg_a: str,
        *,
        credential_id: str | None,
        name: str,
        client: str,
    ) -> dict[str, Any]:
        """Pass the phone's SPAKE2 message to the screen; its answer and confirmation for the phone."""
        user_id = caller.user_id
        if user_id is None:
            raise Forbidden("pairing is for people's phones: sign in with an account")
        self.misses.check(user_id)
        refused = self.sessions.refusal(user_id, device_id)
        if refused is not None:
            raise refused
        unb64_checked(msg_a, MESSAGE_BYTES, "msg_a")
        screen = self.sessions.screens.get(device_id)
        if screen is None or screen.link is None:
            raise Conflict("this screen is not connected for sessions right now")
        if screen.free_slot() is None:
            raise Conflict(f"the game on this screen is full ({screen.max_players} players)")
        homes = self.sessions.hub.people.homes
        home_id = homes.device_home[device_id]
        member = homes.membership(home_id, user_id)
        credential: Credential | None = None
        window: Window | None = None
        if credential_id is not None:
            credential = self.sessions.store.credentials.get(credential_id)
            if credential is None or credential.user_id != user_id or credential.device_id != device_id:
                self.misses.failed(user_id)
                raise NotFound("no such pairing credential for this screen: pair with the code it shows")
            if credential.home_id != home_id:
                await self.sessions.forget_credentials([credential.id])
                raise NotFound("this screen has moved to another home since: pair with the code it shows")
        else:
            window = screen.window
            if window is None or self._now >= window.expires_at:
                raise Conflict("this screen shows no pairing code now: open pairing on the screen")
            if window.current is not None:
                raise Conflict("someone is pairing with this screen right now: try again in a few seconds")
            window.attempts += 1
        attempt = Attempt(
            id=new_id("pair"),
            screen=screen,
            caller=caller,
            user_id=user_id,
            user_name=self._display_name(user_id, caller),
            name=name,
            home_id=home_id,
            guest=member is not None and member.role == GUEST,
            client=client,
            credential=credential,
            new_credential_id=None if credential else new_id("pcr"),
            started=self._now,
        )
        self.attempts[attempt.id] = attempt
        if window is not None:
            window.current = attempt
        screen.tell(
            {
                "type": "pair.request",
                "attempt": attempt.id,
                "msg_a": msg_a,
                "credential_id": credential.id if credential else None,
                "new_credential_id": attempt.new_credential_id,
                "user": {"id": user_id, "name": attempt.user_name},
                "controller_name": name,
            }
        )
        try:
            answer = await asyncio.wait_for(asyncio.shield(attempt.answer), self.answer_timeout_s)
        except TimeoutError:
            self._fail(attempt, "screen_did_not_answer", count=False)
            raise Conflict("the screen did not answer: is it still showing the code?") from None
        return {
            "attempt_id": attempt.id,
            "msg_b": answer["msg_b"],
            "confirm_b": answer["confirm_b"],
            "confirm_within_s": self.confirm_within_s,
        }

    async def confirm(self, caller: Principal, attempt_id: str, confirm_a: str) -> dict[str, Any]:
        """Pass the phone's confirmation to the screen; when the screen accepts it, open the session."""
        attempt = self.attempts.get(attempt_id)
        if attempt is None or attempt.user_id != caller.user_id or attempt.confirming:
            raise NotFound("no such pairing attempt (it finished, timed out, or is not yours)")
        unb64_checked(confirm_a, MAC_BYTES, "confirm_a")
        attempt.confirming = True
        attempt.verdict = asyncio.get_running_loop().create_future()
        attempt.screen.tell({"type": "pair.confirm", "attempt": attempt.id, "confirm_a": confirm_a})
        try:
            ok = await asyncio.wait_for(asyncio.shield(attempt.verdict), self.answer_timeout_s)
        except TimeoutError:
            self._fail(attempt, "screen_did_not_answer", count=False)
            raise Conflict("the screen did not answer in time: try again") from None
        if not ok:
            window = attempt.screen.window
            used = window.attempts if window is not None else self.max_attempts
            self._fail(attempt, "wrong_code", count=True)
            if attempt.credential is not None:
                raise PairingRefused("the screen refused this phone's pairing credential: pair with the code it shows")
            raise PairingRefused(f"the pairing code is wrong ({max(0, self.max_attempts - used)} attempts left)")
        return await self._succeeded(attempt)

    def abort(self, caller: Principal, attempt_id: str) -> None:
        """The phone gives up (it saw that the screen's confirmation did not match): a miss."""
        attempt = self.attempts.get(attempt_id)
        if attempt is None or attempt.user_id != caller.user_id:
            raise NotFound("no such pairing attempt (it finished, timed out, or is not yours)")
        self._fail(attempt, "abandoned", count=True)

    def _display_name(self, user_id: str, caller: Principal) -> str:
        """What the screen shows of the person: their name, never their e-mail address."""
        user = self.sessions.hub.people.accounts.users.get(user_id)
        return user.name if user is not None else caller.name.split("@", 1)[0]

    # -- the screen's side ----------------------------------------------------------------------------------

    def on_answer(self, screen: Screen, doc: dict[str, Any]) -> None:
        attempt = self.attempts.get(str(doc.get("attempt", "")))
        if attempt is None or attempt.screen is not screen or attempt.answer.done():
            return
        error = doc.get("error")
        if error is not None:
            reason = str(error)
            if reason == "unknown_credential" and attempt.credential is not None:
                self.sessions._spawn(self.sessions.forget_credentials([attempt.credential.id]))
                failure: TosError = NotFound("this screen no longer knows this phone: pair with the code it shows")
            elif reason in ("no_code", "burnt", "expired"):
                self.close_window(screen, reason if reason != "no_code" else "closed_by_screen", tell=False)
                failure = Conflict("this screen shows no valid pairing code now: open pairing on the screen")
            else:
                failure = InvalidInput("the screen could not use this pairing message")
            attempt.answer.set_exception(failure)
            self._fail(attempt, reason, count=reason == "malformed")
            return
        try:
            unb64_checked(str(doc.get("msg_b", "")), MESSAGE_BYTES, "msg_b")
            unb64_checked(str(doc.get("confirm_b", "")), MAC_BYTES, "confirm_b")
        except InvalidInput as exc:
            attempt.answer.set_exception(Conflict(f"the screen answered badly: {exc.detail}"))
            self._fail(attempt, "bad_answer", count=False)
            return
        attempt.answer.set_result({"msg_b": doc["msg_b"], "confirm_b": doc["confirm_b"]})

    def on_verdict(self, screen: Screen, doc: dict[str, Any]) -> None:
        attempt = self.attempts.get(str(doc.get("attempt", "")))
        if attempt is None or attempt.screen is not screen or attempt.verdict is None or attempt.verdict.done():
            return
        attempt.verdict.set_result(doc.get("ok") is True)

    # -- endings --------------------------------------------------------------------------------------------

    async def _succeeded(self, attempt: Attempt) -> dict[str, Any]:
        """The screen accepted: record the credential (code pairings), open the session in a free slot."""
        self.attempts.pop(attempt.id, None)
        screen, sessions = attempt.screen, self.sessions
        if attempt.credential is None:
            self.close_window(screen, "used", tell=True)  # a code works once
        credential = attempt.credential
        if credential is None and attempt.new_credential_id is not None:
            credential = Credential(
                attempt.new_credential_id,
                attempt.user_id,
                screen.device_id,
                attempt.home_id,
                attempt.name,
                now_ms(),
                now_ms(),
            )
            await sessions.store.add_credential(credential)
        elif credential is not None:
            await sessions.store.used(credential)
        via = "credential" if attempt.credential else "code"
        await sessions.hub.people.audit.record(
            attempt.caller,
            "session.paired",
            home_id=attempt.home_id,
            device_id=screen.device_id,
            detail={"via": via, "credential_id": credential.id if credential else None},
            ip=attempt.client,
        )
        refused = sessions.refusal(attempt.user_id, screen.device_id)
        if refused is not None:
            raise refused
        controller, resume_token = sessions.open(
            screen,
            user_id=attempt.user_id,
            user_name=attempt.user_name,
            name=attempt.name,
            home_id=attempt.home_id,
            guest=attempt.guest,
            credential_id=credential.id if credential else None,
        )
        return {
            "session": controller.view(),
            "resume_token": resume_token,
            "credential": credential.to_json() if credential else None,
            "via": via,
            "ws_path": f"/api/v1/sessions/{controller.id}/ws",
            "keepalive_s": sessions.keepalive_s,
            "resume_grace_s": sessions.resume_grace_s,
        }

    def _fail(self, attempt: Attempt, reason: str, *, count: bool) -> None:
        """End an attempt that did not pair; ``count`` makes it a miss against the person."""
        if self.attempts.pop(attempt.id, None) is None:
            return
        for future in (attempt.answer, attempt.verdict):
            if future is not None and not future.done():
                future.set_exception(Conflict(f"the pairing attempt ended ({reason})"))
                future.exception()  # retrieved: nobody may be waiting any more
        attempt.screen.tell({"type": "pair.cancel", "attempt": attempt.id, "reason": reason})
        if count:
            self.misses.failed(attempt.user_id)
        window = attempt.screen.window
        if window is not None and window.current is attempt:
            window.current = None
            if attempt.credential is None and window.attempts >= self.max_attempts:
                self.close_window(attempt.screen, "burnt", tell=True)
        self.sessions._spawn(
            self.sessions.hub.people.audit.record(
                attempt.caller,
                "session.pair_failed",
                home_id=attempt.home_id,
                device_id=attempt.screen.device_id,
                detail={
                    "reason": reason,
                    "user_id": attempt.user_id,
                    "via": "credential" if attempt.credential else "code",
                },
                ip=attempt.client,
            )
        )


def unb64_checked(text: str, size: int, what: str) -> bytes:
    try:
        data = unb64(text, what)
    except Exception:
        raise InvalidInput(f"{what} must be base64") from None
    if len(data) != size:
        raise InvalidInput(f"{what} must be {size} bytes")
    return data
