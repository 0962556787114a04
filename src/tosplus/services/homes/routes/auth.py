"""``/auth``: sign-up, OAuth2 token endpoint (password and refresh-token grants), console sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Cookie, Form, Header, Request, Response

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.errors import InvalidInput, Unauthorized
from tosplus.services.homes.auth import REFRESH_TTL_S, Grant
from tosplus.services.homes.schemas import SignIn, SignUp

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["auth"])
COOKIE = "tosplus_session"
COOKIE_PATH = "/api/v1/auth"


@router.post("/auth/signup", status_code=201)
async def sign_up(body: SignUp, hub: HubDep, request: Request) -> dict[str, Any]:
    """Open to everyone: a new person's account."""
    user = await hub.people.accounts.sign_up(body.email, body.password, body.name)
    await hub.people.audit.record(None, "account.signup", actor_label=user.email, ip=client_address(request))
    return {"user": user.to_json()}


@router.post("/auth/token")
async def token(
    hub: HubDep,
    request: Request,
    grant_type: Annotated[str, Form()],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    """OAuth 2.0 token endpoint (RFC 6749 4.3 and 6), form-encoded."""
    if grant_type == "password":
        if not username or not password:
            raise InvalidInput("the password grant needs username (the e-mail) and password")
        grant = await _sign_in(hub, request, username, password, "oauth")
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidInput("the refresh_token grant needs refresh_token")
        grant = await hub.people.auth.refresh(refresh_token)
    else:
        raise InvalidInput("grant_type must be password or refresh_token")
    return grant.to_json()


async def _sign_in(hub: Hub, request: Request, email: str, password: str, kind: str) -> Grant:
    try:
        grant = await hub.people.auth.sign_in(
            email, password, kind=kind, user_agent=request.headers.get("user-agent"), ip=client_address(request)
        )
    except Exception as exc:
        user = hub.people.accounts.by_email(email)
        await hub.people.audit.record(
            None,
            "account.signin_failed",
            actor_label=email[:320],
            detail={"reason": getattr(exc, "detail", "error"), "known_account": user is not None},
            ip=client_address(request),
        )
        raise
    await hub.people.audit.record(
        None, "account.signin", actor_label=grant.user.email, detail={"kind": kind}, ip=client_address(request)
    )
    return grant


@router.post("/auth/session")
async def console_sign_in(body: SignIn, hub: HubDep, request: Request, response: Response) -> dict[str, Any]:
    """Sign-in for the console: the refresh token goes into an HttpOnly cookie, never into script's reach."""
    grant = await _sign_in(hub, request, body.email, body.password, "console")
    _set_cookie(response, grant.refresh_token)
    return grant.to_json(with_refresh=False)


@router.post("/auth/session/refresh")
async def console_refresh(
    hub: HubDep,
    response: Response,
    session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    console: Annotated[str | None, Header(alias="X-TOSPLUS-Console")] = None,
) -> dict[str, Any]:
    # A header a cross-site form cannot send, on top of SameSite=Strict: no request forgery can refresh.
    if console != "1":
        raise Unauthorized("the console must send X-TOSPLUS-Console: 1")
    if not session:
        raise Unauthorized("not signed in")
    grant = await hub.people.auth.refresh(session)
    _set_cookie(response, grant.refresh_token)
    return grant.to_json(with_refresh=False)


@router.delete("/auth/session", status_code=204)
async def console_sign_out(hub: HubDep, session: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
    """Sign this console out (no bearer token needed: the session cookie is the credential)."""
    response = Response(status_code=204)
    if session:
        await hub.people.auth.end_session_of(session)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@router.post("/auth/signout-everywhere", status_code=204)
async def sign_out_everywhere(hub: HubDep, caller: Caller, request: Request) -> Response:
    if caller.user_id is None:
        raise InvalidInput("operator tokens have no sessions; revoke the token instead")
    await hub.people.auth.end_all(caller.user_id)
    await hub.people.audit.record(caller, "account.signout_everywhere", ip=client_address(request))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _set_cookie(response: Response, refresh_token: str) -> None:
    response.set_cookie(
        COOKIE,
        refresh_token,
        max_age=REFRESH_TTL_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=False,  # the hub often runs on plain HTTP at home; behind TLS the browser keeps it all the same
    )
