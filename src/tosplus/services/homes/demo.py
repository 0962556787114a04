"""The demo household of ``tosplus serve --demo``: a person's account that owns the simulated home.

The simulators create their devices through the API; this puts each into the demo home's room named by its
``room`` label, so signing in to the console shows a furnished home at once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tosplus.app import Hub

DEMO_EMAIL = "demo@tosplus.local"
ACCOUNT_FILE = "demo-account"
ROOMS = {
    "living-room": "Living room",
    "kitchen": "Kitchen",
    "bedroom": "Bedroom",
    "hallway": "Hallway",
    "office": "Office",
}


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    password: str
    home_id: str


async def demo_account(hub: Hub, data_dir: Path) -> DemoAccount:
    """The demo person and home, created on first start; the password is kept (0600) in the data directory."""
    people = hub.people
    path = data_dir / ACCOUNT_FILE
    user = people.accounts.by_email(DEMO_EMAIL)
    if user is None or not path.exists():
        password = secrets.token_urlsafe(12)
        if user is None:
            user = await people.accounts.sign_up(DEMO_EMAIL, password, "Alex (demo)")
        else:  # the file was lost: a fresh account is simpler than a reset flow
            await people.accounts.set_password(user.id, password)
        os.makedirs(data_dir, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
    password = path.read_text().strip()
    homes = people.homes.homes_of(user.id)
    home = homes[0][0] if homes else await people.homes.create(user.id, "Demo home", list(ROOMS.values()))
    return DemoAccount(DEMO_EMAIL, password, home.id)


async def furnish(hub: Hub, account: DemoAccount, stop: asyncio.Event, wait_s: float = 60.0) -> int:
    """Place the simulated home's devices (label ``site=home``) into the demo home as they appear."""
    people = hub.people
    home = people.homes.home(account.home_id)
    rooms = {name: room_id for room_id, name in home.rooms.items()}
    owner = next(iter(home.owners()), None)
    placed = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline and not stop.is_set():
        waiting = [
            d
            for d in hub.registry.devices.values()
            if d.labels.get("site") == "home" and d.id not in people.homes.device_home
        ]
        for device in waiting:
            room_id = rooms.get(ROOMS.get(device.labels.get("room", ""), ""))
            await people.homes.place_device(home.id, device.id, room_id, owner)
            placed += 1
        if placed and not waiting:
            break
        await asyncio.sleep(0.5)
    return placed
