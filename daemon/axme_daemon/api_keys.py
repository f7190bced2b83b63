"""API keys for people and programs (`axme keys`): the owner's to make, list and revoke."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from axme_daemon.auth import KeyRing


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1, max_length=20)


def add_key_routes(app: FastAPI, keys: KeyRing) -> None:
    @app.post("/v1/keys", tags=["keys"])
    async def create_key(body: NewKey) -> dict[str, Any]:
        """A new key: the answer is the only place it is ever shown (the store keeps a hash)."""
        key, record = await keys.create(body.name, body.scopes)
        return {"ok": True, "key": key, **record}

    @app.get("/v1/keys", tags=["keys"])
    async def list_keys() -> dict[str, Any]:
        return {"ok": True, "keys": await keys.list()}

    @app.delete("/v1/keys/{name}", tags=["keys"])
    async def revoke_key(name: str) -> dict[str, Any]:
        """From now on the key is unknown: 401."""
        await keys.revoke(name)
        return {"ok": True, "name": name}
