"""Routes for OpenAI's Batch API (image generations and edits): thin calls of the
BatchService, which works through the batches in the background."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from pixelsmith.api.batches import MAX_LIST_LIMIT, BatchService, CreateBatchRequest
from pixelsmith.api.openapi import error_responses
from pixelsmith.api.routes.files import owner_of, page
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.errors import InvalidRequestError

router = APIRouter()


def _batches(request: Request) -> BatchService:
    service: BatchService | None = request.app.state.batch_service
    if service is None:
        raise InvalidRequestError(
            "The Batch API is not available on this server (not under Ray Serve yet).",
            code="unsupported_endpoint",
        )
    return service


@router.post("/v1/batches", name="create_batch", responses=error_responses(400, 401))
async def create_batch(body: CreateBatchRequest, request: Request) -> JSONResponse:
    """Create a batch from an uploaded JSONL file (OpenAI `batches.create`)."""
    service = _batches(request)
    batch = await asyncio.to_thread(service.create, owner_of(request), body)
    return JSONResponse(batch)


@router.get("/v1/batches", name="list_batches", responses=error_responses(400, 401))
async def list_batches(
    request: Request,
    after: str | None = Query(default=None),
    limit: int = Query(default=20, ge=1, le=MAX_LIST_LIMIT),
) -> JSONResponse:
    """The caller's batches, newest first (OpenAI `batches.list`)."""
    service = _batches(request)
    batches, has_more = await asyncio.to_thread(service.list, owner_of(request), after, limit)
    return JSONResponse(page(batches, has_more))


@router.get("/v1/batches/{batch_id}", name="retrieve_batch", responses=error_responses(401, 404))
async def retrieve_batch(batch_id: str, request: Request) -> JSONResponse:
    service = _batches(request)
    return JSONResponse(await asyncio.to_thread(service.retrieve, owner_of(request), batch_id))


@router.post(
    "/v1/batches/{batch_id}/cancel", name="cancel_batch", responses=error_responses(400, 401, 404)
)
async def cancel_batch(batch_id: str, request: Request) -> JSONResponse:
    """Stop a batch; what finished stays in its output file (OpenAI `batches.cancel`)."""
    service = _batches(request)
    return JSONResponse(await asyncio.to_thread(service.cancel, owner_of(request), batch_id))
