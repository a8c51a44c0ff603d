"""Response models and error declarations: what the OpenAPI spec at ``/openapi.json`` says."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    name: str
    description: str
    runtimes: list[str] = []  # e.g. ["torch", "onnx"]; request one as model=NAME:RUNTIME
    aliases: list[str] = []
    # False for a global colour transform (every pixel's output depends on its colour alone): the
    # phone then keeps a key as one colour function and needs no spatial grid for its neighbours.
    spatial: bool = True


class ModelList(BaseModel):
    models: list[ModelInfo]


class StyleCreated(BaseModel):
    style_id: str


def binary_body(*media_types: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True,
                            "content": {m: {"schema": schema} for m in media_types}}}


def error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "object",
                                                         "properties": {"detail": {"type": "string"}}}}}}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_response("bad input (undecodable image, malformed batch, unknown model)"),
    408: error_response("request body not received in time"),
    413: error_response("request, image or batch too large"),
    415: error_response("unsupported content type"),
    503: error_response("edge busy; retry after the Retry-After header's seconds"),
}
# Every guarded route can answer these (declared on the router so the OpenAPI spec lists them).
GUARD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_response("bad input, e.g. a bearer token in the URL query (send it in the Authorization header)"),
    401: error_response("missing or unknown bearer token"),
    403: error_response("the token's scopes do not include this route's"),
    414: error_response("request target (path and query) longer than 16 KiB"),
    431: error_response("request line and headers longer than 16 KiB"),
    429: error_response("this client is over its rate or concurrency limit, or its address over its "
                         "failed authentications; retry after Retry-After seconds"),
}
