"""Request bodies read by the route itself, for the routes every intent goes through.

FastAPI's own body handling (dependency solving, validation into the model, then encoding the
returned dict) was a large part of what a create or a worker's report cost the daemon. These
routes take the `Request`, validate with the same pydantic model, answer with encoded JSON,
and refuse bad input with the same messages (the app's `RequestValidationError` handler
words them). The model still documents the body in the OpenAPI schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse, Response

from axme_cli.errors import AxmeError
from axme_daemon.finite_json import parse_json, refuse_not_finite

M = TypeVar("M", bound=BaseModel)


class _FiniteJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class FiniteJsonRoute(APIRoute):
    """A route whose JSON body is read by `parse_json`: FastAPI reads bodies with
    `Request.json`, which takes NaN and Infinity. (FastAPI answers an error raised while
    reading the body as a 400 caused by it; the app's handler answers with the cause.)"""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def read_finite(request: Request) -> Response:
            return await handler(_FiniteJsonRequest(request.scope, request.receive))

        return read_finite


async def read_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    if not raw.strip():
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "required"}])
    refuse_not_finite(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def json_answer(body: dict[str, Any]) -> Response:
    """The body encoded as FastAPI's JSONResponse would (compact, UTF-8)."""
    text = _encode(body)
    return Response(text.encode(), media_type="application/json")


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    """Every error's shape: `{"error": {"code", "message", "details"}, "detail": message}`."""
    body = {
        "error": {"code": code, "message": message, "details": details or {}},
        "detail": message,
    }
    retry = (details or {}).get("retry_after")
    if retry is None:
        return JSONResponse(body, status_code=status)
    # Come back later, on a new connection: this one's descriptor is freed now.
    headers = {"Retry-After": str(retry), "Connection": "close"}
    return JSONResponse(body, status_code=status, headers=headers)


def error_answer(exc: AxmeError) -> JSONResponse:
    return error_response(exc.http_status, exc.code, exc.message, exc.details)


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` itself."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_bodies(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add `models` (and the models they use) to the app's OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                own = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in own.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components.setdefault(model.__name__, own)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
