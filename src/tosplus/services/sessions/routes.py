"""``/screens`` and ``/sessions``: screens to pair with, pairing, controller sessions and their WebSockets.

The screen's side is the WebSocket ``/sessions/screen`` with the device's credentials (HTTP Basic on the
upgrade, or in the hello message for browsers); the controller's side is ``/sessions/{id}/ws`` with the
person's access token and the session's resume token in the hello message. docs/sessions.md has the messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.errors import Forbidden, NotFound, TosError
from tosplus.services.homes.access import Need
from tosplus.services.homes.homes import OWNER
from tosplus.services.homes.routes.homes import member_of, owner_of
from tosplus.services.sessions.discovery import screens_for
from tosplus.services.sessions.links import WsLink
from tosplus.services.sessions.schemas import AppLaunch, HomeSessionSettings, PairingConfirm, PairingStart
from tosplus.services.sessions.sessions import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHORIZED, Controller

if TYPE_CHECKING:
    from tosplus.app import Hub
    from tosplus.core.tokens import Principal

router = APIRouter(tags=["sessions"])
HELLO_TIMEOUT_S = 10.0
MAX_CONTROLLER_MESSAGE = 8192  # the longest text (500 characters) escaped fits well within


@router.get("/screens")
async def list_screens(hub: HubDep, caller: Caller) -> dict[str, Any]:
    """Screens of the caller's homes (the fallback when mDNS cannot find them), with presence."""
    return {"items": screens_for(hub, caller)}


# -- pairing ---------------------------------------------------------------------------------------------------


@router.post("/sessions/pairings", status_code=201)
async def start_pairing(body: PairingStart, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    return await hub.sessions.pairings.start(
        caller,
        body.device_id,
        body.msg_a,
        credential_id=body.credential_id,
        name=body.name,
        client=client_address(request),
    )


@router.post("/sessions/pairings/{attempt_id}/confirm", status_code=201)
async def confirm_pairing(attempt_id: str, body: PairingConfirm, hub: HubDep, caller: Caller) -> dict[str, Any]:
    return await hub.sessions.pairings.confirm(caller, attempt_id, body.confirm_a)


@router.delete("/sessions/pairings/{attempt_id}", status_code=204)
async def abort_pairing(attempt_id: str, hub: HubDep, caller: Caller) -> Response:
    hub.sessions.pairings.abort(caller, attempt_id)
    return Response(status_code=204)


# -- credentials and settings ----------------------------------------------------------------------------------


@router.get("/sessions/credentials")
async def list_credentials(hub: HubDep, caller: Caller) -> dict[str, Any]:
    """The caller's pairing credentials (which screens their phones can pair with again without a code)."""
    mine = hub.sessions.store.of_user(caller.user_id) if caller.user_id else []
    return {"items": [c.to_json() for c in mine]}


@router.delete("/sessions/credentials/{credential_id}", status_code=204)
async def forget_credential(credential_id: str, hub: HubDep, caller: Caller) -> Response:
    credential = hub.sessions.store.credentials.get(credential_id)
    if credential is None or credential.user_id != caller.user_id:
        raise NotFound("no such pairing credential")
    await hub.sessions.forget_credentials([credential_id])
    return Response(status_code=204)


@router.get("/sessions/homes/{home_id}/settings")
async def home_settings(home_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    member_of(hub, caller, home_id)
    return _settings_json(hub, home_id)


@router.patch("/sessions/homes/{home_id}/settings")
async def update_home_settings(
    home_id: str, body: HomeSessionSettings, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    owner_of(hub, caller, home_id)
    await hub.sessions.set_guests_may_control(home_id, body.guests_may_control, caller.user_id)
    await hub.people.audit.record(
        caller,
        "home.session_settings",
        home_id=home_id,
        detail={"guests_may_control": body.guests_may_control},
        ip=client_address(request),
    )
    return _settings_json(hub, home_id)


def _settings_json(hub: Hub, home_id: str) -> dict[str, Any]:
    return {
        "home_id": home_id,
        "guests_may_control": hub.sessions.store.guests_may_control.get(home_id, False),
        "max_players": hub.sessions.max_players,
    }


# -- sessions --------------------------------------------------------------------------------------------------


@router.get("/sessions")
async def list_sessions(hub: HubDep, caller: Caller) -> dict[str, Any]:
    """The caller's controller sessions (operators: all)."""
    found = list(hub.sessions.controllers.values()) if caller.is_operator else hub.sessions.of_user(caller.id)
    return {"items": [c.view() for c in sorted(found, key=lambda c: c.opened_at)]}


@router.get("/sessions/screens/{device_id}")
async def screen_sessions(device_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    """A screen's players: who holds which slot, connected or lost."""
    hub.people.access.require(caller, device_id, Need.SEE)
    screen = hub.sessions.screens.get(device_id)
    if screen is None:
        return {
            "device_id": device_id,
            "online": False,
            "max_players": hub.sessions.max_players,
            "players": 0,
            "pairing_open": False,
            "discriminator": None,
            "controllers": [],
        }
    return screen.view()


def _session_for(hub: Hub, caller: Principal, session_id: str) -> tuple[Controller, bool]:
    """The session and whether the caller is its own person (else an owner of the screen's home)."""
    controller = hub.sessions.controllers.get(session_id)
    if controller is None:
        raise NotFound(f"no session '{session_id}'")
    if controller.user_id == caller.user_id:
        return controller, True
    if caller.is_operator:
        return controller, False
    member = hub.people.homes.membership(controller.home_id, caller.id) if caller.user_id else None
    if member is None:
        raise NotFound(f"no session '{session_id}'")
    if member.role != OWNER:
        raise Forbidden("only the person who opened it or the home's owners can end someone's session")
    return controller, False


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    controller, _ = _session_for(hub, caller, session_id)
    return controller.view()


@router.delete("/sessions/{session_id}", status_code=204)
async def close_session(session_id: str, hub: HubDep, caller: Caller) -> Response:
    controller, own = _session_for(hub, caller, session_id)
    hub.sessions.end(controller, "closed" if own else "kicked")
    return Response(status_code=204)


# -- apps on a screen (like DIAL) ------------------------------------------------------------------------------


@router.get("/screens/{device_id}/apps/{app_id}")
async def app_status(device_id: str, app_id: str, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    """The app's state as the screen tells it: ``running``, ``stopped`` or ``not_installed``."""
    return await hub.sessions.relay.app_over_http(caller, device_id, "status", app_id, {}, client_address(request))


@router.post("/screens/{device_id}/apps/{app_id}")
async def launch_app(
    device_id: str, app_id: str, hub: HubDep, caller: Caller, request: Request, body: AppLaunch | None = None
) -> dict[str, Any]:
    """Launch the app on the screen with ``params``; 409 when the screen is not connected, 504 when it is silent."""
    return await hub.sessions.relay.app_over_http(
        caller, device_id, "launch", app_id, body.params if body else {}, client_address(request)
    )


@router.delete("/screens/{device_id}/apps/{app_id}")
async def stop_app(device_id: str, app_id: str, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    return await hub.sessions.relay.app_over_http(caller, device_id, "stop", app_id, {}, client_address(request))


# -- WebSockets ------------------------------------------------------------------------------------------------


@router.websocket("/sessions/screen")
async def screen_socket(websocket: WebSocket) -> None:
    """The screen's connection: hello (credentials, discriminator, max players), then pairing and sessions."""
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    hello = await _hello(websocket)
    if hello is None:
        return
    device_id, secret = _basic(websocket.headers.get("authorization", ""))
    device_id = device_id or str(hello.get("device_id") or "")
    secret = secret or str(hello.get("secret") or "")
    if not device_id or not hub.registry.authenticate(device_id, secret):
        await websocket.close(CLOSE_UNAUTHORIZED, "unknown device, wrong secret, or device disabled")
        return
    link = WsLink(websocket, batch=hello.get("batch") is True)  # input frames as one `inputs` message a write
    try:
        discriminator = hello.get("discriminator")
        max_players = hello.get("max_players")
        screen = hub.sessions.attach_screen(
            device_id,
            link,
            discriminator=int(discriminator) & 0xFFF if isinstance(discriminator, int) else None,
            max_players=int(max_players) if isinstance(max_players, int) else None,
        )
    except TosError as exc:
        link.close(CLOSE_FORBIDDEN, exc.detail)
        await _until_closed(websocket, link)
        return
    sessions = hub.sessions
    link.send(
        {
            "type": "welcome",
            **screen.view(),
            "keepalive_s": sessions.keepalive_s,
            "silence_s": sessions.silence_s,
            "resume_grace_s": sessions.resume_grace_s,
        }
    )
    try:
        await _pump(websocket, link, lambda doc, _: sessions.screen_message(screen, doc))
    finally:
        sessions.detach_screen(screen, link)
        await link.finish()


@router.websocket("/sessions/{session_id}/ws")
async def controller_socket(websocket: WebSocket, session_id: str) -> None:
    """A controller's connection: hello (access token, resume token), then keep-alive and events."""
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    hello = await _hello(websocket)
    if hello is None:
        return
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else str(hello.get("token") or "")
    try:
        principal = await hub.people.auth.verify(token)
    except TosError:
        await websocket.close(CLOSE_UNAUTHORIZED, "a valid access token is required")
        return
    link = WsLink(websocket)
    sessions = hub.sessions
    try:
        controller = sessions.attach(session_id, principal.user_id or "", str(hello.get("resume_token") or ""), link)
    except TosError as exc:
        link.close(CLOSE_NOT_FOUND if isinstance(exc, NotFound) else CLOSE_FORBIDDEN, exc.detail)
        await _until_closed(websocket, link)
        return
    link.send(
        {
            "type": "welcome",
            "session": controller.view(),
            "keepalive_s": sessions.keepalive_s,
            "silence_s": sessions.silence_s,
            "resume_grace_s": sessions.resume_grace_s,
        }
    )
    try:
        await _pump(
            websocket,
            link,
            lambda doc, size: sessions.controller_message(controller, doc, size),
            MAX_CONTROLLER_MESSAGE,
        )
    finally:
        sessions.detach(controller, link)
        await link.finish()


async def _hello(websocket: WebSocket) -> dict[str, Any] | None:
    """The first message, a JSON object, within the time limit; ``None`` (connection closed) otherwise."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT_S)
        doc = orjson.loads(text)
    except (TimeoutError, orjson.JSONDecodeError, KeyError):
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_UNAUTHORIZED, "send a hello message first")
        return None
    except (WebSocketDisconnect, RuntimeError):
        return None
    if not isinstance(doc, dict) or doc.get("type") != "hello":
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_UNAUTHORIZED, "send a hello message first")
        return None
    return doc


async def _pump(
    websocket: WebSocket, link: WsLink, handle: Callable[[dict[str, Any], int], None], max_size: int = 0
) -> None:
    """``handle(JSON object, its size)`` for each message until the peer (or the hub) closes the connection;
    messages over ``max_size`` (when given) are refused unread. Where the server offers its direct path, the
    messages are handled as the socket reads them (no task wake-up per game-pad frame) and this only waits
    for the end; else a plain loop over ``receive``."""

    def on_message(raw: str | bytes) -> None:
        if link.closed:
            return
        if max_size and len(raw) > max_size:
            link.send({"type": "error", "for": "message", "detail": f"messages are at most {max_size} bytes"})
            return
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            link.send({"type": "error", "detail": "messages are JSON objects"})
            return
        if type(doc) is dict:
            handle(doc, len(raw))
        else:
            link.send({"type": "error", "detail": "messages are JSON objects"})

    receive = websocket.receive
    if link.direct is not None:
        link.direct.take(on_message)
    while not link.closed or link.direct is not None:
        try:
            message = await receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        on_message(text if text is not None else message.get("bytes") or b"")


async def _until_closed(websocket: WebSocket, link: WsLink) -> None:
    """Let the writer send the close, then stop it."""
    with contextlib.suppress(Exception):
        await _pump(websocket, link, lambda doc, size: None)
    await link.finish()


def _basic(header: str) -> tuple[str, str]:
    if not header.lower().startswith("basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password
