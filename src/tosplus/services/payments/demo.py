"""The demo's money (``tosplus serve --demo``): the demo person's wallet with something in it, a shop they run,
and their simulated watch able to pay — so the console's wallet and merchant pages have something to show and
the counter can be tried at once with the shop's API key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tosplus.app import Hub

SHOP_NAME = "Corner Coffee (demo)"
SHOP_KEY_FILE = "demo-shop-key"
TOP_UP = 500_00  # fen: 500.00 CNY, once
TEST_CARD = "4242424242424242"  # the simulated card network's "always accepted" card


async def open_wallet_and_shop(hub: Hub, user_id: str, data_dir: Path) -> str:
    """Top the wallet up once and open the person's shop (first start); the shop's API key, which is shown once
    by the API, is kept (0600) in the data directory."""
    await hub.payments.top_up(user_id, TOP_UP, TEST_CARD, f"demo-top-up:{user_id}")  # the id makes it once
    path = data_dir / SHOP_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    _, key = await hub.payments.create_merchant(SHOP_NAME, user_id)
    os.makedirs(data_dir, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


async def let_the_watch_pay(hub: Hub, user_id: str, home_id: str) -> str | None:
    """Enable payment on the demo home's smartwatch (once); its device id, or None when there is none yet."""
    for device_id, home in list(hub.people.homes.device_home.items()):
        device = hub.registry.devices.get(device_id)
        if home != home_id or device is None or device.product_id != "smartwatch":
            continue
        if device_id not in hub.payments.tokens:
            await hub.payments.enable(
                user_id, device_id, per_payment_limit=200_00, daily_limit=500_00, confirm_above=50_00
            )
        return device_id
    return None
