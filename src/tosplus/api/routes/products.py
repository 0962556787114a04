"""``/products``: device models registered by manufacturers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from tosplus.api.deps import Admin, HubDep
from tosplus.api.schemas import ProductCreate, ThingModelReplace

router = APIRouter(tags=["products"])


@router.post("/products", status_code=201)
async def create_product(body: ProductCreate, hub: HubDep, _: Admin) -> dict[str, Any]:
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
async def list_products(hub: HubDep, _: Admin) -> dict[str, Any]:
    return {"items": [p.to_json() for p in sorted(hub.registry.products.values(), key=lambda p: p.id)]}


@router.get("/products/{product_id}")
async def get_product(product_id: str, hub: HubDep, _: Admin) -> dict[str, Any]:
    return hub.registry.product(product_id).to_json()


@router.put("/products/{product_id}/thing-model")
async def replace_thing_model(product_id: str, body: ThingModelReplace, hub: HubDep, _: Admin) -> dict[str, Any]:
    return (await hub.registry.replace_thing_model(product_id, body.thing_model)).to_json()


@router.delete("/products/{product_id}", status_code=204)
async def delete_product(product_id: str, hub: HubDep, _: Admin) -> Response:
    await hub.registry.delete_product(product_id)
    return Response(status_code=204)
