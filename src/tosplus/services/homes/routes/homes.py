"""``/homes``: homes, rooms, members, invitations; ``/invitations/accept``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.api.routes.devices import device_json
from tosplus.core.tokens import Principal
from tosplus.errors import InvalidInput, NotFound
from tosplus.services.homes.homes import GUEST, MEMBER, OWNER, Home, Membership, require_role
from tosplus.services.homes.schemas import (
    HomeCreate,
    InvitationAccept,
    InvitationCreate,
    MemberUpdate,
    Rename,
    Transfer,
)

if TYPE_CHECKING:
    from tosplus.app import Hub

router = APIRouter(tags=["homes"])


def member_of(hub: Hub, caller: Principal, home_id: str) -> Membership | None:
    """The caller's membership (``None`` for operators, who see every home); 404 for anyone else."""
    if caller.is_operator:
        hub.people.homes.home(home_id)
        return None
    member = hub.people.homes.membership(home_id, caller.id) if caller.user_id else None
    if member is None:
        raise NotFound(f"no home '{home_id}'")
    return member


def with_role(hub: Hub, caller: Principal, home_id: str, *roles: str) -> Membership | None:
    """The caller's membership if it has one of ``roles`` (operators pass); 404 or 403 otherwise."""
    member = member_of(hub, caller, home_id)
    return require_role(member, *roles) if member is not None else None


def owner_of(hub: Hub, caller: Principal, home_id: str) -> None:
    with_role(hub, caller, home_id, OWNER)


def home_json(hub: Hub, home: Home, member: Membership | None, caller: Principal) -> dict[str, Any]:
    users = hub.people.accounts.users
    members = home.members.values() if member is None or member.role != GUEST else [member]
    devices = [d for d in sorted(home.devices) if member is None or member.allows(d)]
    return {
        "id": home.id,
        "name": home.name,
        "role": member.role if member else "operator",
        "created_at": home.created_at,
        "rooms": [{"id": room_id, "name": name} for room_id, name in home.rooms.items()],
        "members": [
            {
                "user_id": m.user_id,
                "email": users[m.user_id].email if m.user_id in users else None,
                "name": users[m.user_id].name if m.user_id in users else None,
                "role": m.role,
                "expires_at": m.expires_at,
                "devices": sorted(m.devices) if m.devices is not None else None,
                "joined_at": m.joined_at,
            }
            for m in members
        ],
        "devices": [device_json(hub, hub.registry.devices[d], caller) for d in devices if d in hub.registry.devices],
    }


async def _audit(hub: Hub, caller: Principal, action: str, home_id: str, request: Request, **detail: Any) -> None:
    await hub.people.audit.record(caller, action, home_id=home_id, detail=detail or None, ip=client_address(request))


@router.get("/homes")
async def list_homes(hub: HubDep, caller: Caller) -> dict[str, Any]:
    if caller.is_operator:
        pairs: list[tuple[Home, Membership | None]] = [(h, None) for h in hub.people.homes.homes.values()]
    else:
        pairs = list(hub.people.homes.homes_of(caller.id)) if caller.user_id else []
    return {
        "items": [
            {
                "id": h.id,
                "name": h.name,
                "role": m.role if m else "operator",
                "rooms": len(h.rooms),
                "devices": sum(1 for d in h.devices if m is None or m.allows(d)),
                "members": len(h.members),
            }
            for h, m in pairs
        ]
    }


@router.post("/homes", status_code=201)
async def create_home(body: HomeCreate, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    if caller.user_id is None:
        raise InvalidInput("homes belong to people: sign in with an account to create one")
    home = await hub.people.homes.create(caller.user_id, body.name, body.rooms)
    await _audit(hub, caller, "home.create", home.id, request, name=home.name)
    return home_json(hub, home, home.members[caller.user_id], caller)


@router.get("/homes/{home_id}")
async def get_home(home_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    member = member_of(hub, caller, home_id)
    return home_json(hub, hub.people.homes.home(home_id), member, caller)


@router.patch("/homes/{home_id}")
async def rename_home(home_id: str, body: Rename, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    owner_of(hub, caller, home_id)
    home = await hub.people.homes.rename(home_id, body.name)
    await _audit(hub, caller, "home.rename", home_id, request, name=home.name)
    return home_json(hub, home, member_of(hub, caller, home_id), caller)


@router.delete("/homes/{home_id}", status_code=204)
async def delete_home(home_id: str, hub: HubDep, caller: Caller, request: Request) -> Response:
    owner_of(hub, caller, home_id)
    for device_id in list(hub.people.homes.home(home_id).devices):
        await hub.people.binding.unbind(device_id)
        await hub.people.audit.record(
            caller, "device.unbind", home_id=home_id, device_id=device_id, ip=client_address(request)
        )
    await hub.people.homes.delete(home_id)
    await _audit(hub, caller, "home.delete", home_id, request)
    return Response(status_code=204)


@router.post("/homes/{home_id}/rooms", status_code=201)
async def add_room(home_id: str, body: Rename, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    with_role(hub, caller, home_id, OWNER, MEMBER)
    room_id = await hub.people.homes.add_room(home_id, body.name)
    await _audit(hub, caller, "room.create", home_id, request, room_id=room_id, name=body.name)
    return {"id": room_id, "name": hub.people.homes.homes[home_id].rooms[room_id]}


@router.patch("/homes/{home_id}/rooms/{room_id}")
async def rename_room(
    home_id: str, room_id: str, body: Rename, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    with_role(hub, caller, home_id, OWNER, MEMBER)
    await hub.people.homes.rename_room(home_id, room_id, body.name)
    await _audit(hub, caller, "room.rename", home_id, request, room_id=room_id, name=body.name)
    return {"id": room_id, "name": hub.people.homes.homes[home_id].rooms[room_id]}


@router.delete("/homes/{home_id}/rooms/{room_id}", status_code=204)
async def delete_room(home_id: str, room_id: str, hub: HubDep, caller: Caller, request: Request) -> Response:
    owner_of(hub, caller, home_id)
    await hub.people.homes.delete_room(home_id, room_id)
    await _audit(hub, caller, "room.delete", home_id, request, room_id=room_id)
    return Response(status_code=204)


@router.patch("/homes/{home_id}/members/{user_id}")
async def update_member(
    home_id: str, user_id: str, body: MemberUpdate, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    owner_of(hub, caller, home_id)
    await hub.people.homes.update_member(home_id, user_id, body.role, body.expires_at, body.devices)
    await _audit(hub, caller, "member.update", home_id, request, user_id=user_id, **body.model_dump())
    return home_json(hub, hub.people.homes.homes[home_id], member_of(hub, caller, home_id), caller)


@router.delete("/homes/{home_id}/members/{user_id}", status_code=204)
async def remove_member(home_id: str, user_id: str, hub: HubDep, caller: Caller, request: Request) -> Response:
    """An owner removes someone; anyone may remove themselves (leave)."""
    if user_id != caller.id:
        owner_of(hub, caller, home_id)
    else:
        member_of(hub, caller, home_id)
    await hub.people.homes.remove_member(home_id, user_id)
    await _audit(
        hub, caller, "member.leave" if user_id == caller.id else "member.remove", home_id, request, user_id=user_id
    )
    return Response(status_code=204)


@router.post("/homes/{home_id}/transfer")
async def transfer(home_id: str, body: Transfer, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    require_role(member_of(hub, caller, home_id), OWNER)
    await hub.people.homes.transfer(home_id, caller.id, body.user_id)
    await _audit(hub, caller, "home.transfer", home_id, request, to=body.user_id)
    return home_json(hub, hub.people.homes.homes[home_id], member_of(hub, caller, home_id), caller)


@router.post("/homes/{home_id}/invitations", status_code=201)
async def invite(home_id: str, body: InvitationCreate, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    owner_of(hub, caller, home_id)
    invitation = await hub.people.homes.invite(
        home_id, caller.id, body.role, body.email, body.devices, body.guest_expires_at, body.valid_hours
    )
    await _audit(
        hub,
        caller,
        "invitation.create",
        home_id,
        request,
        invitation_id=invitation["id"],
        role=body.role,
        email=body.email,
    )
    return invitation


@router.get("/homes/{home_id}/invitations")
async def list_invitations(home_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    owner_of(hub, caller, home_id)
    return {"items": await hub.people.homes.invitations(home_id)}


@router.delete("/homes/{home_id}/invitations/{invitation_id}", status_code=204)
async def revoke_invitation(
    home_id: str, invitation_id: str, hub: HubDep, caller: Caller, request: Request
) -> Response:
    owner_of(hub, caller, home_id)
    await hub.people.homes.revoke_invitation(home_id, invitation_id)
    await _audit(hub, caller, "invitation.revoke", home_id, request, invitation_id=invitation_id)
    return Response(status_code=204)


@router.post("/invitations/accept")
async def accept_invitation(body: InvitationAccept, hub: HubDep, caller: Caller, request: Request) -> dict[str, Any]:
    if caller.user_id is None:
        raise InvalidInput("invitations are for people: sign in with an account to accept one")
    user = hub.people.accounts.get(caller.user_id)
    home = await hub.people.homes.accept(user, body.code, client_address(request))
    member = home.members[user.id]
    await _audit(hub, caller, "invitation.accept", home.id, request, role=member.role)
    return home_json(hub, home, member, caller)
