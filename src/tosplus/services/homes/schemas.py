"""Request bodies of the homes-and-people API (see docs/homes.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUp(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)
    name: str = Field(max_length=200)


class SignIn(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)


class UserCreate(SignUp):
    role: str = "person"
    manufacturer: str | None = Field(default=None, max_length=200)


class ApiKeyCreate(_Body):
    name: str = Field(max_length=200)


class HomeCreate(_Body):
    name: str = Field(max_length=200)
    rooms: list[str] = Field(default_factory=list, max_length=100)


class Rename(_Body):
    name: str = Field(max_length=200)


class MemberUpdate(_Body):
    role: str
    expires_at: int | None = None
    devices: list[str] | None = Field(default=None, max_length=1000)


class Transfer(_Body):
    user_id: str


class InvitationCreate(_Body):
    role: str
    email: str | None = Field(default=None, max_length=320)
    devices: list[str] | None = Field(default=None, max_length=1000)
    guest_expires_at: int | None = None
    valid_hours: float = 72


class InvitationAccept(_Body):
    code: str = Field(max_length=64)


class Bind(_Body):
    code: str = Field(max_length=64)
    room_id: str | None = None
    name: str | None = Field(default=None, max_length=200)


class DevicePlace(_Body):
    room_id: str | None = None
    name: str | None = Field(default=None, max_length=200)


class BindingCodeCreate(_Body):
    valid_days: float = Field(default=365, gt=0)
