"""Homes, their rooms and members, invitations, and which device sits in which home and room.

Everything is kept in memory as well as in the database: every API call and every live event asks "may this
person see this device?", and that must be a few dictionary lookups, not a query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tosplus.core.ids import hash_secret, new_id, now_ms
from tosplus.errors import Conflict, Forbidden, InvalidInput, NotFound
from tosplus.services.homes import codes
from tosplus.services.homes import tables as t
from tosplus.services.homes.accounts import User
from tosplus.services.homes.limits import FailureLimiter

OWNER, MEMBER, GUEST = "owner", "member", "guest"
HOME_ROLES = (OWNER, MEMBER, GUEST)
INVITATION_CODE_LENGTH = 10  # 50 bits


@dataclass(slots=True)
class Membership:
    user_id: str
    role: str
    expires_at: int | None
    devices: frozenset[str] | None  # guests: the only devices they may use
    joined_at: int

    def active(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now

    def allows(self, device_id: str) -> bool:
        return self.devices is None or device_id in self.devices


@dataclass(slots=True)
class Home:
    id: str
    name: str
    created_at: int
    rooms: dict[str, str] = field(default_factory=dict)  # room id -> name
    members: dict[str, Membership] = field(default_factory=dict)
    devices: dict[str, str | None] = field(default_factory=dict)  # device id -> room id

    def owners(self) -> list[str]:
        return [m.user_id for m in self.members.values() if m.role == OWNER]


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 200:
        raise InvalidInput(f"{what} must be 1 to 200 characters")
    return value


class Homes:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.homes: dict[str, Home] = {}
        self.by_user: dict[str, set[str]] = {}
        self.device_home: dict[str, str] = {}
        self.invitation_misses = FailureLimiter(10, 600, "invitation codes")

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            for row in await conn.execute(sa.select(t.homes)):
                self.homes[row.id] = Home(row.id, row.name, row.created_at)
            for row in await conn.execute(sa.select(t.rooms).order_by(t.rooms.c.created_at)):
                self.homes[row.home_id].rooms[row.id] = row.name
            for row in await conn.execute(sa.select(t.members)):
                self._add_member(row.home_id, _membership(row))
            for row in await conn.execute(sa.select(t.device_homes)):
                self.homes[row.home_id].devices[row.device_id] = row.room_id
                self.device_home[row.device_id] = row.home_id

    # -- reading ----------------------------------------------------------------------------------------------

    def home(self, home_id: str) -> Home:
        home = self.homes.get(home_id)
        if home is None:
            raise NotFound(f"no home '{home_id}'")
        return home

    def membership(self, home_id: str, user_id: str) -> Membership | None:
        """The person's membership of the home, if it exists and has not expired."""
        home = self.homes.get(home_id)
        member = home.members.get(user_id) if home else None
        return member if member is not None and member.active(now_ms()) else None

    def homes_of(self, user_id: str) -> list[tuple[Home, Membership]]:
        now = now_ms()
        found = []
        for home_id in sorted(self.by_user.get(user_id, ())):
            home = self.homes[home_id]
            member = home.members[user_id]
            if member.active(now):
                found.append((home, member))
        return found

    def room_of(self, device_id: str) -> tuple[str | None, str | None]:
        home_id = self.device_home.get(device_id)
        return (home_id, self.homes[home_id].devices.get(device_id)) if home_id else (None, None)

    # -- homes and rooms --------------------------------------------------------------------------------------

    async def create(self, owner_id: str, name: str, rooms: list[str]) -> Home:
        moment = now_ms()
        home = Home(new_id("home"), _name(name, "name"), moment)
        room_rows: list[dict[str, Any]] = [
            {"id": new_id("room"), "home_id": home.id, "name": _name(r, "room name"), "created_at": moment + i}
            for i, r in enumerate(rooms)
        ]
        member = Membership(owner_id, OWNER, None, None, moment)
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.homes).values(id=home.id, name=home.name, created_at=moment))
            if room_rows:
                await conn.execute(sa.insert(t.rooms), room_rows)
            await conn.execute(sa.insert(t.members).values(home_id=home.id, **_member_row(member)))
        self.homes[home.id] = home
        home.rooms.update({r["id"]: r["name"] for r in room_rows})
        self._add_member(home.id, member)
        return home

    async def rename(self, home_id: str, name: str) -> Home:
        home = self.home(home_id)
        name = _name(name, "name")
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(t.homes).where(t.homes.c.id == home_id).values(name=name))
        home.name = name
        return home

    async def delete(self, home_id: str) -> None:
        """Forget the home; its devices must have been unbound first (see Binding.unbind)."""
        home = self.home(home_id)
        if home.devices:
            raise Conflict("unbind the home's devices first")
        async with self.engine.begin() as conn:
            for table in (t.members, t.rooms, t.invitations):
                await conn.execute(sa.delete(table).where(table.c.home_id == home_id))
            await conn.execute(sa.delete(t.homes).where(t.homes.c.id == home_id))
        for user_id in home.members:
            self.by_user.get(user_id, set()).discard(home_id)
        del self.homes[home_id]

    async def add_room(self, home_id: str, name: str) -> str:
        home = self.home(home_id)
        room_id, name = new_id("room"), _name(name, "room name")
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.rooms).values(id=room_id, home_id=home_id, name=name, created_at=now_ms()))
        home.rooms[room_id] = name
        return room_id

    def room(self, home_id: str, room_id: str) -> str:
        if room_id not in self.home(home_id).rooms:
            raise NotFound(f"no room '{room_id}' in this home")
        return room_id

    async def rename_room(self, home_id: str, room_id: str, name: str) -> None:
        self.room(home_id, room_id)
        name = _name(name, "room name")
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(t.rooms).where(t.rooms.c.id == room_id).values(name=name))
        self.homes[home_id].rooms[room_id] = name

    async def delete_room(self, home_id: str, room_id: str) -> None:
        self.room(home_id, room_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.device_homes).where(t.device_homes.c.room_id == room_id).values(room_id=None)
            )
            await conn.execute(sa.delete(t.rooms).where(t.rooms.c.id == room_id))
        home = self.homes[home_id]
        del home.rooms[room_id]
        for device_id, room in home.devices.items():
            if room == room_id:
                home.devices[device_id] = None

    # -- devices in homes -------------------------------------------------------------------------------------

    async def place_device(self, home_id: str, device_id: str, room_id: str | None, by: str | None) -> None:
        if room_id is not None:
            self.room(home_id, room_id)
        if device_id in self.device_home:
            raise Conflict("this device belongs to a home already; its owner must unbind it first")
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(t.device_homes).values(
                    device_id=device_id, home_id=home_id, room_id=room_id, bound_by=by, bound_at=now_ms()
                )
            )
        self.homes[home_id].devices[device_id] = room_id
        self.device_home[device_id] = home_id

    async def move_device(self, home_id: str, device_id: str, room_id: str | None) -> None:
        if room_id is not None:
            self.room(home_id, room_id)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.device_homes).where(t.device_homes.c.device_id == device_id).values(room_id=room_id)
            )
        self.homes[home_id].devices[device_id] = room_id

    async def remove_device(self, device_id: str) -> str | None:
        """Take the device out of its home (and out of guests' lists); the home it was in."""
        home_id = self.device_home.pop(device_id, None)
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.device_homes).where(t.device_homes.c.device_id == device_id))
        if home_id is not None:
            home = self.homes[home_id]
            home.devices.pop(device_id, None)
            for member in home.members.values():
                if member.devices is not None and device_id in member.devices:
                    await self._save_member(home_id, member, devices=member.devices - {device_id})
        return home_id

    # -- members ----------------------------------------------------------------------------------------------

    def _add_member(self, home_id: str, member: Membership) -> None:
        self.homes[home_id].members[member.user_id] = member
        self.by_user.setdefault(member.user_id, set()).add(home_id)

    def _check_terms(self, home: Home, role: str, devices: list[str] | None, expires_at: int | None) -> None:
        if role not in HOME_ROLES:
            raise InvalidInput(f"role must be one of {', '.join(HOME_ROLES)}")
        if role == GUEST:
            if devices is None:
                raise InvalidInput("a guest needs the list of devices they may use (it may be empty)")
            unknown = sorted(set(devices) - set(home.devices))
            if unknown:
                raise InvalidInput(f"not devices of this home: {', '.join(unknown)}")
        elif devices is not None:
            raise InvalidInput("only guests are limited to chosen devices")
        if expires_at is not None and expires_at <= now_ms():
            raise InvalidInput("expires_at must be in the future")

    async def _save_member(self, home_id: str, member: Membership, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(member, key, value)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.members)
                .where(t.members.c.home_id == home_id, t.members.c.user_id == member.user_id)
                .values(**_member_row(member))
            )

    async def update_member(
        self, home_id: str, user_id: str, role: str, expires_at: int | None, devices: list[str] | None
    ) -> Membership:
        home = self.home(home_id)
        member = home.members.get(user_id)
        if member is None:
            raise NotFound("this person is not a member of the home")
        self._check_terms(home, role, devices, expires_at)
        if member.role == OWNER and role != OWNER and home.owners() == [user_id]:
            raise Conflict("the home's only owner cannot step down; make someone else owner first")
        await self._save_member(
            home_id,
            member,
            role=role,
            expires_at=expires_at,
            devices=frozenset(devices) if devices is not None else None,
        )
        return member

    async def remove_member(self, home_id: str, user_id: str) -> None:
        home = self.home(home_id)
        member = home.members.get(user_id)
        if member is None:
            raise NotFound("this person is not a member of the home")
        if member.role == OWNER and home.owners() == [user_id]:
            raise Conflict("the home's only owner cannot leave; transfer ownership or delete the home")
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.delete(t.members).where(t.members.c.home_id == home_id, t.members.c.user_id == user_id)
            )
        del home.members[user_id]
        self.by_user.get(user_id, set()).discard(home_id)

    async def transfer(self, home_id: str, from_user: str, to_user: str) -> None:
        home = self.home(home_id)
        target = home.members.get(to_user)
        if target is None or not target.active(now_ms()):
            raise NotFound("ownership can go only to a member of the home")
        if to_user == from_user:
            raise InvalidInput("you own this home already")
        await self._save_member(home_id, target, role=OWNER, expires_at=None, devices=None)
        await self._save_member(home_id, home.members[from_user], role=MEMBER)

    # -- invitations ------------------------------------------------------------------------------------------

    async def invite(
        self,
        home_id: str,
        by: str,
        role: str,
        email: str | None,
        devices: list[str] | None,
        guest_expires_at: int | None,
        valid_hours: float,
    ) -> dict[str, Any]:
        home = self.home(home_id)
        self._check_terms(home, role, devices, guest_expires_at)
        if not 0 < valid_hours <= 24 * 30:
            raise InvalidInput("valid_hours must be more than 0 and at most 720 (30 days)")
        code = codes.new_code(INVITATION_CODE_LENGTH)
        moment = now_ms()
        row = {
            "id": new_id("inv"),
            "home_id": home_id,
            "role": role,
            "email": email.strip().lower() if email else None,
            "devices": sorted(devices) if devices is not None else None,
            "guest_expires_at": guest_expires_at,
            "created_by": by,
            "created_at": moment,
            "expires_at": moment + int(valid_hours * 3_600_000),
        }
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(t.invitations).values(**row, code_hash=hash_secret(code)))
        return {**row, "code": codes.grouped(code)}

    async def invitations(self, home_id: str) -> list[dict[str, Any]]:
        self.home(home_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.invitations)
                .where(t.invitations.c.home_id == home_id)
                .order_by(t.invitations.c.created_at.desc())
            )
            return [{k: v for k, v in r._mapping.items() if k != "code_hash"} for r in rows]

    async def revoke_invitation(self, home_id: str, invitation_id: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(t.invitations)
                .where(
                    t.invitations.c.id == invitation_id,
                    t.invitations.c.home_id == home_id,
                    t.invitations.c.accepted_at.is_(None),
                    t.invitations.c.revoked_at.is_(None),
                )
                .values(revoked_at=now_ms())
            )
        if result.rowcount == 0:
            raise NotFound("no open invitation with this id")

    async def accept(self, user: User, code: str, client: str) -> Home:
        self.invitation_misses.check(user.id, client)
        digest, moment = hash_secret(codes.normalise(code)), now_ms()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(t.invitations).where(
                        t.invitations.c.code_hash == digest,
                        t.invitations.c.accepted_at.is_(None),
                        t.invitations.c.revoked_at.is_(None),
                        t.invitations.c.expires_at > moment,
                    )
                )
            ).first()
            if row is None or (row.email and row.email != user.email) or row.home_id not in self.homes:
                self.invitation_misses.failed(user.id, client)
                raise NotFound("this invitation code is not valid (wrong, expired, used or for someone else)")
            home = self.homes[row.home_id]
            if user.id in home.members:
                raise Conflict("you are a member of this home already")
            # Only one acceptance can win, even when two requests race with the same code.
            won = await conn.execute(
                sa.update(t.invitations)
                .where(t.invitations.c.id == row.id, t.invitations.c.accepted_at.is_(None))
                .values(accepted_at=moment, accepted_by=user.id)
            )
            if won.rowcount != 1:
                raise NotFound("this invitation code has just been used")
            devices = frozenset(d for d in row.devices or () if d in home.devices) if row.role == GUEST else None
            member = Membership(user.id, row.role, row.guest_expires_at, devices, moment)
            await conn.execute(sa.insert(t.members).values(home_id=home.id, **_member_row(member)))
        self._add_member(home.id, member)
        return home


def _member_row(member: Membership) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "role": member.role,
        "expires_at": member.expires_at,
        "devices": sorted(member.devices) if member.devices is not None else None,
        "joined_at": member.joined_at,
    }


def _membership(row: Any) -> Membership:
    devices = frozenset(row.devices) if row.devices is not None else None
    return Membership(row.user_id, row.role, row.expires_at, devices, row.joined_at)


def require_role(member: Membership | None, *roles: str) -> Membership:
    """The membership, if it has one of ``roles``; Forbidden otherwise (the caller can see the home)."""
    if member is None or member.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(roles)} in this home")
    return member
