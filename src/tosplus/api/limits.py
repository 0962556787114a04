"""Refuse oversized request bodies before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tosplus.api.problems import problem


class BodyLimit:
    """413 for bodies over the limit: device API bodies by the device payload limit, the rest by api_limit."""

    def __init__(self, app: ASGIApp, *, api_limit: int, device_limit: int) -> None:
        self.app = app
        self.api_limit = api_limit
        self.device_limit = device_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.device_limit if scope["path"].startswith("/device/") else self.api_limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, "Payload too large", f"body of {int(declared)} bytes is over the limit of {limit}")(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge as exc:
            too_large = problem(413, "Payload too large", f"body is over the limit of {exc.limit} bytes")
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
