"""Every error the hub raises on purpose derives from :class:`TosError`.

The tree::

    TosError
    ├── ConfigError           a setting is wrong or a service it names cannot be reached (hub stops at start)
    ├── NotFound              a product, device, command ... does not exist (HTTP 404)
    ├── Conflict              the request clashes with the current state (HTTP 409)
    │   └── VersionMismatch   optimistic concurrency failed: expected version is stale (HTTP 412)
    ├── InvalidInput          a request or a device message breaks the thing model or the protocol (HTTP 422)
    ├── Unauthorized          missing or wrong credentials (HTTP 401)
    ├── Forbidden             credentials are valid but not for this (HTTP 403)
    ├── TooLarge              payload over the configured limit (HTTP 413)
    └── RateLimited           too many messages or requests (HTTP 429)

API routes map these to RFC 7807 problem documents; the ingest path maps them to dead letters.
"""

from __future__ import annotations


class TosError(Exception):
    """Root of every error the hub raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigError(TosError):
    status = 500
    title = "Configuration error"


class NotFound(TosError):
    status = 404
    title = "Not found"


class Conflict(TosError):
    status = 409
    title = "Conflict"


class VersionMismatch(Conflict):
    status = 412
    title = "Precondition failed"


class InvalidInput(TosError):
    status = 422
    title = "Invalid input"


class Unauthorized(TosError):
    status = 401
    title = "Unauthorized"


class Forbidden(TosError):
    status = 403
    title = "Forbidden"


class TooLarge(TosError):
    status = 413
    title = "Payload too large"


class RateLimited(TosError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
