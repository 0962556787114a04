"""Dependencies by type: the hub and the caller.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, which costs a
thread hop per dependency per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tosplus.core.tokens import Principal
from tosplus.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from tosplus.app import Hub

_bearer = HTTPBearer(auto_error=False)


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated["Hub", Depends(get_hub)]


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    hub: Hub = request.app.state.hub
    return hub.tokens.verify(credentials.credentials)


async def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.role != "admin":
        raise Forbidden("this needs an administrator's token")
    return principal


Admin = Annotated[Principal, Depends(require_admin)]
