"""``/products``: device models registered by manufacturers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Response

from tosplus.api.deps import Caller, HubDep
from tosplus.api.schemas import ProductCreate, ThingModelReplace
from tosplus.errors import Forbidden

if TYPE_CHECKING:
    from tosplus.app import Hub
    from tosplus.core.tokens import Principal

router = APIRouter(tags=["products"])


def _may_manage(hub: Hub, caller: Principal, manufacturer: str) -> None:
    """Everyone signed in may read the catalog; operators and the product's own maker change it."""
    if not hub.people.access.may_manage_product(caller, manufacturer):
        raise Forbidden("only operators and the product's manufacturer can change products")


@router.post("/products", status_code=201)
async def create_product(body: ProductCreate, hub: HubDep, caller: Caller) -> dict[str, Any]:
    _may_manage(hub, caller, body.manufacturer)
    product, key = await hub.registry.create_product(
        product_id=body.id,
        name=body.name,
        manufacturer=body.manufacturer,
        thing_model=body.thing_model,
        fleet_provisioning=body.fleet_provisioning,
    )
    out = product.to_json()
    if key:
        out["provisioning_key"] = key  # shown once; stored hashed
    return out


@router.get("/products")
async def list_products(hub: HubDep, _: Caller) -> dict[str, Any]:
    return {"items": [p.to_json() for p in sorted(hub.registry.products.values(), key=lambda p: p.id)]}


@router.get("/products/{product_id}")
async def get_product(product_id: str, hub: HubDep, _: Caller) -> dict[str, Any]:
    return hub.registry.product(product_id).to_json()


@router.put("/products/{product_id}/thing-model")
async def replace_thing_model(product_id: str, body: ThingModelReplace, hub: HubDep, caller: Caller) -> dict[str, Any]:
    _may_manage(hub, caller, hub.registry.product(product_id).manufacturer)
    return (await hub.registry.replace_thing_model(product_id, body.thing_model)).to_json()


@router.delete("/products/{product_id}", status_code=204)
async def delete_product(product_id: str, hub: HubDep, caller: Caller) -> Response:
    _may_manage(hub, caller, hub.registry.product(product_id).manufacturer)
    await hub.registry.delete_product(product_id)
    return Response(status_code=204)
