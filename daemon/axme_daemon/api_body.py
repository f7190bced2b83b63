"""Request bodies read by the route itself, for the routes every intent goes through.

FastAPI's own body handling (dependency solving, validation into the model, then encoding the
returned dict) was a large part of what a create or a worker's report cost the daemon. These
routes take the `Request`, validate with the same pydantic model, answer with encoded JSON,
and refuse bad input with the same messages (the app's `RequestValidationError` handler
words them). The model still documents the body in the OpenAPI schema.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from axme_cli.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)

#: Python reads `NaN`, `Infinity` and `-Infinity` as JSON, and a number too large for a
#: float (`1e400`) as infinity; an integer past 4300 digits it cannot read at all. None of
#: them can be stored, streamed or read back as JSON. A body holding one has one of these
#: patterns (an exponent of 3 digits or a run of 100 digits, for the numbers too large), so
#: only such bodies pay for a second, checking parse.
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|[eE][-+]?\d{3}|\d{100}")
_MAX_INT_DIGITS = 4300


class _NotFinite:
    """What the checking parse puts where a number JSON cannot carry was."""

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _int(text: str) -> int | _NotFinite:
    return int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else _NotFinite(text)


_checking = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_NotFinite)


def _first_not_finite(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    if isinstance(value, _NotFinite):
        return ".".join(path), value.text
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first_not_finite(item, (*path, str(key)))
        if found is not None:
            return found
    return None


def _refuse(value: Any) -> None:
    found = _first_not_finite(value)
    if found is not None:
        where, text = found
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"
        raise ValidationFailed(
            f"{where or 'request body'}: {shown} is not a finite JSON number",
            details={"field": where},
        )


def refuse_not_finite(raw: bytes) -> None:
    """422 naming the field when `raw` holds a number JSON cannot carry (see above);
    nothing when it holds none, or is not JSON at all (the parser after this says so)."""
    if _MAYBE_NOT_FINITE.search(raw) is None:
        return
    try:
        value = _checking.decode(raw.decode())
    except ValueError:
        return
    _refuse(value)


def parse_json(raw: bytes) -> Any:
    """A JSON body, or `json.JSONDecodeError`, or a 422 for a number JSON cannot carry."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", "", exc.start) from None
    if _MAYBE_NOT_FINITE.search(raw) is None:
        return json.loads(text)
    value = _checking.decode(text)
    _refuse(value)
    return value


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
