"""``/me`` (the caller's account, API keys, sessions) and ``/users`` (operators manage accounts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from tosplus.api.deps import Caller, HubDep, Operator, client_address
from tosplus.core.tokens import Principal
from tosplus.errors import InvalidInput
from tosplus.services.homes.schemas import ApiKeyCreate, UserCreate

router = APIRouter(tags=["accounts"])


def _user_id(caller: Principal) -> str:
    if caller.user_id is None:
        raise InvalidInput("operator tokens have no account; sign in as a person for this")
    return caller.user_id


@router.get("/me")
async def me(hub: HubDep, caller: Caller) -> dict[str, Any]:
    if caller.user_id is None:
        return {"id": caller.id, "email": None, "name": caller.name, "role": caller.role, "homes": []}
    user = hub.people.accounts.get(caller.user_id)
    homes = [{"id": h.id, "name": h.name, "role": m.role} for h, m in hub.people.homes.homes_of(user.id)]
    return {**user.to_json(), "homes": homes}


@router.get("/me/api-keys")
async def list_api_keys(hub: HubDep, caller: Caller) -> dict[str, Any]:
    return {"items": await hub.people.auth.list_api_keys(_user_id(caller))}


@router.post("/me/api-keys", status_code=201)
async def create_api_key(body: ApiKeyCreate, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    key = await hub.people.auth.create_api_key(_user_id(caller), body.name)
    await hub.people.audit.record(
        caller, "account.api_key.create", detail={"key_id": key["id"], "name": key["name"]}, ip=client_address(request)
    )
    return key


@router.delete("/me/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: str, hub: HubDep, caller: Caller, request: Request) -> Response:
    await hub.people.auth.revoke_api_key(_user_id(caller), key_id)
    await hub.people.audit.record(
        caller, "account.api_key.revoke", detail={"key_id": key_id}, ip=client_address(request)
    )
    return Response(status_code=204)


@router.get("/me/sessions")
async def list_sessions(hub: HubDep, caller: Caller) -> dict[str, Any]:
    return {"items": await hub.people.auth.list_sessions(_user_id(caller), caller.session_id)}


@router.delete("/me/sessions/{session_id}", status_code=204)
async def end_session(session_id: str, hub: HubDep, caller: Caller) -> Response:
    await hub.people.auth.end_session(_user_id(caller), session_id)
    return Response(status_code=204)


@router.get("/users")
async def list_users(hub: HubDep, _: Operator) -> dict[str, Any]:
    users = sorted(hub.people.accounts.users.values(), key=lambda u: u.created_at)
    return {"items": [{**u.to_json(), "locked_until": u.locked_until, "failed_logins": u.failed_logins} for u in users]}


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, hub: HubDep, caller: Operator, request: Request) -> dict[str, Any]:
    """Operators create operator and manufacturer accounts (and people's, if need be)."""
    user = await hub.people.accounts.sign_up(body.email, body.password, body.name, body.role, body.manufacturer)
    await hub.people.audit.record(
        caller, "account.create", detail={"user_id": user.id, "role": user.role}, ip=client_address(request)
    )
    return {"user": user.to_json()}


@router.post("/users/{user_id}/unlock")
async def unlock_user(user_id: str, hub: HubDep, caller: Operator, request: Request) -> dict[str, Any]:
    user = await hub.people.accounts.unlock(user_id)
    await hub.people.audit.record(caller, "account.unlock", detail={"user_id": user_id}, ip=client_address(request))
    return {"user": user.to_json()}
