"""`DirectRoutes`: the hot routes answer as the app would, errors included; others pass."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from axme_cli.errors import AxmeError, NotFound
from axme_daemon.api_direct import DirectRoutes


async def _axme(request: Request, exc: AxmeError) -> Response:
    return JSONResponse({"code": exc.code}, status_code=exc.http_status)


async def _any(request: Request, exc: Exception) -> Response:
    return JSONResponse({"code": "internal_error", "message": str(exc)}, status_code=500)


async def _echo(request: Request) -> Response:
    body = await request.body()
    if body == b"missing":
        raise NotFound("no such thing")
    if body == b"broken":
        raise RuntimeError("the disk is on fire")
    return PlainTextResponse(f"direct {request.headers.get('x-n')} {body.decode()}")


async def _routed(request: Request) -> Response:
    return PlainTextResponse("routed")


def _client(handlers: dict[object, object]) -> httpx.AsyncClient:
    inner = Starlette(routes=[Route("/hot", _routed, methods=["GET", "POST"])])
    app = DirectRoutes(inner, {("POST", "/hot"): _echo}, handlers)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://axme")


async def test_a_direct_route_gets_the_request_with_its_headers_and_body() -> None:
    async with _client({AxmeError: _axme, Exception: _any}) as client:
        response = await client.post("/hot", content=b"hi", headers={"x-n": "7"})
    assert (response.status_code, response.text) == (200, "direct 7 hi")


async def test_other_methods_and_paths_go_to_the_app() -> None:
    async with _client({AxmeError: _axme, Exception: _any}) as client:
        assert (await client.get("/hot")).text == "routed"
        assert (await client.post("/hot/")).status_code == 307  # the app redirects it


async def test_errors_are_answered_by_the_most_specific_handler() -> None:
    async with _client({AxmeError: _axme, Exception: _any}) as client:
        missing = await client.post("/hot", content=b"missing")
        broken = await client.post("/hot", content=b"broken")
    assert (missing.status_code, missing.json()) == (404, {"code": "not_found"})
    assert broken.status_code == 500
    assert broken.json() == {"code": "internal_error", "message": "the disk is on fire"}


async def test_an_error_no_handler_takes_reaches_the_server() -> None:
    async with _client({AxmeError: _axme}) as client:
        response = await client.post("/hot", content=b"broken")
    assert response.status_code == 500
