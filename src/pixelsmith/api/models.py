"""Routes for the OpenAI Models API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelsmith.api.protocol import ModelCard, ModelList
from pixelsmith.api.responses import JSONResponse
from pixelsmith.engine import Engine
from pixelsmith.errors import ModelNotFoundError

router = APIRouter()


def model_cards(engine: Engine, created: int) -> list[ModelCard]:
    """Configured models first, then the OpenAI names they answer to."""
    own_ids = {spec.id for spec in engine.registry.specs}

    def owner(name: str) -> str:
        # Hub-style ids name their owner ("stabilityai/sd-turbo"); everything else is ours.
        return name.split("/", 1)[0] if name in own_ids and "/" in name else "pixelsmith"

    return [
        ModelCard(id=name, created=created, owned_by=owner(name))
        for name in engine.registry.names()
    ]


@router.get("/v1/models", name="list_models", response_model=ModelList)
async def list_models(request: Request) -> JSONResponse:
    cards = model_cards(request.app.state.engine, request.app.state.started_at)
    return JSONResponse(ModelList(data=cards).model_dump())


# `:path` because ids such as stabilityai/sd-turbo arrive percent-encoded (%2F) and the server
# decodes them before routing.
@router.get("/v1/models/{model_id:path}", name="retrieve_model", response_model=ModelCard)
async def retrieve_model(model_id: str, request: Request) -> JSONResponse:
    if not model_id:
        raise StarletteHTTPException(404)  # "/v1/models/" names no model: an unknown URL
    cards = model_cards(request.app.state.engine, request.app.state.started_at)
    for card in cards:
        if card.id == model_id:
            return JSONResponse(card.model_dump())
    raise ModelNotFoundError(model_id, [card.id for card in cards])
