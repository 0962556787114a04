"""Where a device finds the hub's WebSockets, from the one base URL it was given."""

from __future__ import annotations


def websocket_url(hub: str, path: str) -> str:
    """``ws://host:port`` + ``path`` from a hub's base URL (http, https, ws or wss; a bare host:port is plain ws);
    a URL that already ends with ``path`` is kept as it is."""
    base = hub.rstrip("/")
    for plain, ws in (("http://", "ws://"), ("https://", "wss://")):
        if base.startswith(plain):
            base = ws + base[len(plain) :]
    if not base.startswith(("ws://", "wss://")):
        base = "ws://" + base
    return base if base.endswith(path) else base + path
