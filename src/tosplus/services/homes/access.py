"""Who may do what to which device: the one place that answers it, for every route and the live stream.

- operators: everything;
- people: the devices of the homes they belong to (guests: only their listed devices, until they expire);
  credentials actions need the home's owner;
- manufacturers: their products' fleets; the data and control of a device only while it is bound to no home.

A device the caller may not see answers 404, the same as a device that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from enum import Enum

from tosplus.core.ids import now_ms
from tosplus.core.registry import Registry
from tosplus.core.tokens import MANUFACTURER, Principal
from tosplus.errors import Forbidden, NotFound
from tosplus.services.homes.homes import OWNER, Homes


class Need(Enum):
    SEE = "see"  # the device record and its presence
    DATA = "data"  # twin, telemetry, events, command history, dead letters
    CONTROL = "control"  # desired state and commands
    CREDENTIALS = "credentials"  # rotate or revoke the device's secret
    FLEET = "fleet"  # rename, relabel, disable, delete: the maker's or the operator's business


class Access:
    def __init__(self, registry: Registry, homes: Homes) -> None:
        self.registry = registry
        self.homes = homes

    def can(self, principal: Principal, device_id: str, need: Need) -> bool:
        try:
            self.require(principal, device_id, need)
        except (NotFound, Forbidden):
            return False
        return True

    def require(self, principal: Principal, device_id: str, need: Need) -> None:
        """Return quietly when allowed; NotFound when the caller may not even see it; Forbidden otherwise."""
        if principal.is_operator:
            self.registry.device(device_id)
            return
        device = self.registry.devices.get(device_id)
        if device is None:
            raise NotFound(f"no device '{device_id}'")
        home_id = self.homes.device_home.get(device_id)
        if principal.role == MANUFACTURER:
            if self.registry.products[device.product_id].manufacturer != principal.manufacturer:
                raise NotFound(f"no device '{device_id}'")
            if need is not Need.SEE and home_id is not None:
                raise Forbidden("this device belongs to a person's home; only its owner manages it")
            return
        member = self.homes.membership(home_id, principal.id) if home_id and principal.user_id else None
        if member is None or not member.allows(device_id):
            raise NotFound(f"no device '{device_id}'")
        if need is Need.FLEET:
            raise Forbidden("device records are managed by their maker; use your home's device settings")
        if need is Need.CREDENTIALS and member.role != OWNER:
            raise Forbidden("only the home's owners can change a device's credentials")

    def visible_devices(self, principal: Principal) -> set[str] | None:
        """The devices the caller may see; ``None`` means all of them."""
        if principal.is_operator:
            return None
        if principal.role == MANUFACTURER:
            mine = {p.id for p in self.registry.products.values() if p.manufacturer == principal.manufacturer}
            return {d.id for d in self.registry.devices.values() if d.product_id in mine}
        visible: set[str] = set()
        now = now_ms()
        for home_id in self.homes.by_user.get(principal.id, ()):
            home = self.homes.homes[home_id]
            member = home.members[principal.id]
            if member.active(now):
                visible.update(d for d in home.devices if member.allows(d))
        return visible

    def may_manage_product(self, principal: Principal, manufacturer: str) -> bool:
        return principal.is_operator or (principal.role == MANUFACTURER and principal.manufacturer == manufacturer)
