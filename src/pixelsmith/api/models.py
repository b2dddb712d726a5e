"""Routes for the OpenAI Models API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from pixelsmith.api.auth import require_api_key
from pixelsmith.api.protocol import ModelCard, ModelList
from pixelsmith.api.responses import JSONResponse
from pixelsmith.engine import Engine
from pixelsmith.errors import ModelNotFoundError

router = APIRouter(dependencies=[Depends(require_api_key)])


def model_cards(engine: Engine, created: int) -> list[ModelCard]:
    cards = []
    for spec in engine.registry.specs:
        # Hub-style ids name their owner ("stabilityai/sd-turbo"); others are ours.
        owner = spec.id.split("/", 1)[0] if "/" in spec.id else "pixelsmith"
        cards.append(ModelCard(id=spec.id, created=created, owned_by=owner))
        cards += [
            ModelCard(id=alias, created=created, owned_by="pixelsmith")
            for alias in spec.aliases
            if alias != spec.id
        ]
    return cards


@router.get("/v1/models", name="list_models", response_model=ModelList)
async def list_models(request: Request) -> JSONResponse:
    cards = model_cards(request.app.state.engine, request.app.state.started_at)
    return JSONResponse(ModelList(data=cards).model_dump())


# `:path` because ids such as stabilityai/sd-turbo arrive percent-encoded (%2F) and the server
# decodes them before routing.
@router.get("/v1/models/{model_id:path}", name="retrieve_model", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request) -> JSONResponse:
    cards = model_cards(request.app.state.engine, request.app.state.started_at)
    for card in cards:
        if card.id == model_id:
            return JSONResponse(card.model_dump())
    raise ModelNotFoundError(model_id, [card.id for card in cards])
