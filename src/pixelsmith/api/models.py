"""Routes for the OpenAI Models API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse

from pixelsmith.api.auth import require_api_key
from pixelsmith.api.protocol import ModelCard, ModelList
from pixelsmith.engine import Engine
from pixelsmith.errors import ModelNotFoundError

router = APIRouter(dependencies=[Depends(require_api_key)])


def model_cards(engine: Engine, created: int) -> list[ModelCard]:
    cards = []
    for spec in engine.registry.specs:
        owner = spec.source.split("/", 1)[0] if "/" in spec.source else "pixelsmith"
        cards.append(ModelCard(id=spec.id, created=created, owned_by=owner))
        cards += [
            ModelCard(id=alias, created=created, owned_by="pixelsmith")
            for alias in spec.aliases
            if alias != spec.id
        ]
    return cards


@router.get("/v1/models", name="list_models", response_model=ModelList)
async def list_models(request: Request) -> ORJSONResponse:
    cards = model_cards(request.app.state.engine, request.app.state.started_at)
    return ORJSONResponse(ModelList(data=cards).model_dump())


# `:path` because ids such as stabilityai/sd-turbo arrive percent-encoded (%2F) and the server
# decodes them before routing.
@router.get("/v1/models/{model_id:path}", name="retrieve_model", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request) -> ORJSONResponse:
    cards = model_cards(request.app.state.engine, request.app.state.started_at)
    for card in cards:
        if card.id == model_id:
            return ORJSONResponse(card.model_dump())
    raise ModelNotFoundError(model_id, [card.id for card in cards])
