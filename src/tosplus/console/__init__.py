"""The web console: a single-page app served by the hub itself (no CDN, no build step at run time)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Serve the console at ``/console/`` and send ``/`` there."""
