"""Route for the OpenAI Moderations API."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from pixelsmith.api.openapi import error_responses
from pixelsmith.api.protocol import CreateModerationRequest, ModerationResponse
from pixelsmith.api.transport.responses import JSONResponse
from pixelsmith.service.moderations import create_moderation as moderate

router = APIRouter()


@router.post(
    "/v1/moderations",
    name="create_moderation",
    response_model=ModerationResponse,
    responses=error_responses(400, 401, 413, 500),
)
async def create_moderation(body: CreateModerationRequest, request: Request) -> JSONResponse:
    """Classify text (and images given as data: URLs) with the server's moderator."""
    response = await asyncio.to_thread(moderate, request.app.state.moderator, body)
    return JSONResponse(response.model_dump())
