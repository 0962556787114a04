"""The web console: a single-page app served by the hub itself (no CDN, no build step at run time).

Everything it needs is in ``static/``: ``index.html``, the ES modules under ``js/``, the stylesheet and the
vendored uPlot under ``vendor/`` (see ``static/vendor/README.md``). It talks to the hub only through the public
API under ``/api/v1``, like any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"

# Vendored files are referenced with their version in the query string (``?v=1.6.32``), so a browser may keep
# them for a year; the console's own files are revalidated on every load (ETag, answered 304 when unchanged),
# so a new hub version is picked up at once without renaming files.
VENDOR_CACHE = "public, max-age=31536000, immutable"
APP_CACHE = "no-cache"

# The console loads nothing from elsewhere; uPlot sets element styles, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob: mediastream:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class ConsoleFiles(StaticFiles):
    """Static files with cache and security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        vendor = path.replace("\\", "/").startswith("vendor/")
        response.headers["Cache-Control"] = VENDOR_CACHE if vendor and response.status_code == 200 else APP_CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if response.media_type == "text/html" or path in ("", ".", "index.html"):
            response.headers["Content-Security-Policy"] = CSP
        return response


def install(app: FastAPI) -> None:
    """Serve the console at ``/console/`` and send ``/`` there."""
    app.mount("/console", ConsoleFiles(directory=STATIC, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)
