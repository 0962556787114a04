"""A simulated controller (a person's phone): pairs with a screen through the hub and holds its session.

It is what a phone app does, in Python, over the REST API and the session WebSocket (docs/sessions.md)::

    phone = SimController("http://hub:8080", access_token, name="Alice's phone")
    paired = await phone.pair(tv_id, code="1234 5678")        # SPAKE2 with the code; the hub only relays
    async with phone.connect(paired) as link:                  # the session's WebSocket
        print(link.welcome["session"]["slot"])
        await link.send_input(buttons=1, axes=[0.5, 0.0])      # the game pad; link.remote("ok"), link.text(...)
    again = await phone.pair(tv_id, credential=paired.credential)   # later: no code needed

Used by the tests and the benchmarks; the game pad pages do the same in the browser.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from tosplus.sdk.controller import ControllerSession, SessionClosed
from tosplus.sdk.pairing import ControllerPairing, PairingError, b64, unb64


@dataclass(frozen=True, slots=True)
class PairedSession:
    device_id: str
    session_id: str
    slot: int
    resume_token: str
    session_key: bytes
    credential: tuple[str, bytes] | None  # (credential id, secret) to pair again without a code
    ws_path: str
    via: str


class PairingFailed(Exception):
    def __init__(self, status: int, detail: str, reason: str = "") -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.reason = reason


SessionSocket = ControllerSession  # the open session: input, remote keys, text, apps, events


class SimController:
    def __init__(self, base_url: str, access_token: str, *, name: str = "phone") -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.name = name

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.access_token}"}, timeout=30
        )

    async def pair(
        self, device_id: str, *, code: str | None = None, credential: tuple[str, bytes] | None = None
    ) -> PairedSession:
        """Pair with the screen (with the code it shows, or a credential from an earlier pairing)."""
        side = ControllerPairing(device_id, code=code, credential=credential)
        async with self._client() as http:
            started = await http.post(
                "/api/v1/sessions/pairings",
                json={
                    "device_id": device_id,
                    "msg_a": b64(side.msg_a),
                    "credential_id": credential[0] if credential else None,
                    "name": self.name,
                },
            )
            if started.status_code != 201:
                raise PairingFailed(started.status_code, started.json().get("detail", started.text))
            answer = started.json()
            try:
                confirm_a = side.finish(unb64(answer["msg_b"]), unb64(answer["confirm_b"]))
            except PairingError as exc:
                # The screen's confirmation does not match: the code was wrong. Say so, so it counts.
                await http.delete(f"/api/v1/sessions/pairings/{answer['attempt_id']}")
                raise PairingFailed(403, str(exc), exc.reason) from None
            confirmed = await http.post(
                f"/api/v1/sessions/pairings/{answer['attempt_id']}/confirm", json={"confirm_a": b64(confirm_a)}
            )
            if confirmed.status_code != 201:
                raise PairingFailed(confirmed.status_code, confirmed.json().get("detail", confirmed.text))
        body = confirmed.json()
        credential_json = body.get("credential")
        paired = side.result(credential_json["id"] if credential_json else None)
        kept = credential
        if paired.credential_secret is not None and paired.credential_id is not None:
            kept = (paired.credential_id, paired.credential_secret)
        session = body["session"]
        return PairedSession(
            device_id=device_id,
            session_id=session["session_id"],
            slot=session["slot"],
            resume_token=body["resume_token"],
            session_key=paired.session_key,
            credential=kept,
            ws_path=body["ws_path"],
            via=body["via"],
        )

    @contextlib.asynccontextmanager
    async def connect(
        self, paired: PairedSession, *, keepalive_s: float | None = None, keep_events: bool = True
    ) -> AsyncIterator[ControllerSession]:
        """The session's WebSocket (a new connection resumes the session in the same slot)."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                session = await stack.enter_async_context(
                    ControllerSession.connect(
                        self.base_url,
                        paired.session_id,
                        self.access_token,
                        paired.resume_token,
                        keepalive_s=keepalive_s,
                        keep_events=keep_events,
                    )
                )
            except SessionClosed as exc:
                raise PairingFailed(exc.code, exc.reason) from None
            yield session
