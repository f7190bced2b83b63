"""The authorization table and the app agree: every route has its rule, every rule a route.

A route added without a rule would be the owner's only (safe, but a key that should use it
could not); a rule left behind by a renamed route would guard nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from axme_daemon.api import attach_registry, create_app
from axme_daemon.authz import RULES, Rule, rule_for
from axme_daemon.config import load_settings
from axme_daemon.engine import Engine
from axme_daemon.store import open_store

#: Routes no key but the owner's may use, on purpose.
OWNER_ONLY = {("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/{name}")}


def _routes(home: Path) -> set[tuple[str, str]]:
    app = create_app(Engine(open_store(str(home / "axme.db"))), load_settings(home))
    registry: Any = object()  # routes only: nothing is called
    attach_registry(app, registry)
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


def _sample(path: str) -> str:
    """A concrete path for a route's template: `{address:path}` gets an address."""
    return re.sub(r"\{[a-z_]+(:path)?\}", lambda m: "o/e/n" if m[1] else "x1", path)


def test_every_route_has_its_rule_and_every_rule_a_route(axme_home: Path) -> None:
    routes = _routes(axme_home)
    own = {(m, p): rule for m, p, rule in RULES}
    for method, path in routes - OWNER_ONLY:
        assert (method, path) in own, f"{method} {path} has no rule: only the owner could use it"
        # ...and a request for it meets that rule, not an earlier one that also matches.
        assert rule_for(method, _sample(path))[0] is own[method, path], f"{method} {path}"
    for method, path in OWNER_ONLY:
        assert rule_for(method, _sample(path))[0] == Rule()
    api = {key for key in own if key[1].startswith(("/v1/", "/health"))}
    assert api <= routes, f"rules for no route: {sorted(api - routes)}"
