"""``/homes/{id}/scenes`` and ``/scenes/{id}``: define, change, run scenes and read their runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tosplus.api.deps import Caller, HubDep, client_address
from tosplus.core.tokens import Principal
from tosplus.errors import NotFound
from tosplus.services.homes.homes import MEMBER, OWNER
from tosplus.services.homes.routes.homes import member_of, with_role

router = APIRouter(tags=["scenes"])


class SceneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    actions: list[dict[str, Any]] = Field(max_length=100)
    trigger: dict[str, Any] | None = None


class SceneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    actions: list[dict[str, Any]] | None = Field(default=None, max_length=100)
    trigger: dict[str, Any] | None = None


def _visible(hub: Any, caller: Principal, scene: dict[str, Any]) -> bool:
    """Guests see (and run) only scenes made entirely of their devices."""
    member = member_of(hub, caller, scene["home_id"])
    return member is None or all(member.allows(a.get("device_id", "")) for a in scene["actions"])


async def _scene(hub: Any, caller: Principal, scene_id: str, *roles: str) -> dict[str, Any]:
    """The scene, if the caller may see it (404 otherwise, as for a scene that does not exist)."""
    scene: dict[str, Any] = await hub.scenes.get(scene_id)
    try:
        visible = _visible(hub, caller, scene)
    except NotFound:
        visible = False
    if not visible:
        raise NotFound(f"no scene '{scene_id}'")
    if roles:
        with_role(hub, caller, scene["home_id"], *roles)
    return scene


@router.get("/homes/{home_id}/scenes")
async def list_scenes(home_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    member_of(hub, caller, home_id)
    return {"items": [s for s in await hub.scenes.of_home(home_id) if _visible(hub, caller, s)]}


@router.post("/homes/{home_id}/scenes", status_code=201)
async def create_scene(
    home_id: str, body: SceneCreate, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    with_role(hub, caller, home_id, OWNER, MEMBER)
    scene: dict[str, Any] = await hub.scenes.create(home_id, body.name, body.actions, body.trigger, caller.id)
    await hub.people.audit.record(
        caller, "scene.create", home_id=home_id, detail={"scene_id": scene["id"]}, ip=client_address(request)
    )
    return scene


@router.patch("/scenes/{scene_id}")
async def update_scene(
    scene_id: str, body: SceneUpdate, hub: HubDep, caller: Caller, request: Request
) -> dict[str, Any]:
    scene = await _scene(hub, caller, scene_id, OWNER, MEMBER)
    changed: dict[str, Any] = await hub.scenes.update(scene_id, body.model_dump(exclude_unset=True))
    await hub.people.audit.record(
        caller, "scene.update", home_id=scene["home_id"], detail={"scene_id": scene_id}, ip=client_address(request)
    )
    return changed


@router.delete("/scenes/{scene_id}", status_code=204)
async def delete_scene(scene_id: str, hub: HubDep, caller: Caller, request: Request) -> Response:
    scene = await _scene(hub, caller, scene_id, OWNER, MEMBER)
    await hub.scenes.delete(scene_id)
    await hub.people.audit.record(
        caller, "scene.delete", home_id=scene["home_id"], detail={"scene_id": scene_id}, ip=client_address(request)
    )
    return Response(status_code=204)


@router.post("/scenes/{scene_id}/run")
async def run_scene(scene_id: str, hub: HubDep, caller: Caller) -> dict[str, Any]:
    """Apply the scene; answers when every device has answered or the run's time (5 s) is up."""
    scene = await _scene(hub, caller, scene_id)
    run: dict[str, Any] = await hub.scenes.run(scene, "api", caller)
    return run


@router.get("/scenes/{scene_id}/runs")
async def scene_runs(
    scene_id: str, hub: HubDep, caller: Caller, limit: int = Query(default=50, ge=1, le=500)
) -> dict[str, Any]:
    await _scene(hub, caller, scene_id)
    return {"items": await hub.scenes.runs(scene_id, limit)}
