"""Routes for the OpenAI Models API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelsmith.api.openapi import error_responses
from pixelsmith.api.protocol import ModelCard, ModelList
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.service.models import ModelCatalog

router = APIRouter()


def _catalog(request: Request) -> ModelCatalog:
    catalog: ModelCatalog = request.app.state.model_catalog
    return catalog


@router.get(
    "/v1/models",
    name="list_models",
    response_model=ModelList,
    responses=error_responses(401, 500),
)
async def list_models(request: Request) -> JSONResponse:
    return JSONResponse(_catalog(request).list().model_dump())


# `:path` because ids such as stabilityai/sd-turbo arrive percent-encoded (%2F) and the server
# decodes them before routing.
@router.get(
    "/v1/models/{model_id:path}",
    name="retrieve_model",
    response_model=ModelCard,
    responses=error_responses(401, 404, 500),
)
async def retrieve_model(model_id: str, request: Request) -> JSONResponse:
    if not model_id:
        raise StarletteHTTPException(404)  # "/v1/models/" names no model: an unknown URL
    return JSONResponse(_catalog(request).retrieve(model_id).model_dump())
