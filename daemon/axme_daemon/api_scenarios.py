"""AXME's scenarios over HTTP: `/v1/scenarios/validate` and `/v1/scenarios/apply`, plus the
intent controls and policy routes AXME clients call (answered with what runs locally).

Apply is one write: the agents' keys it provisions, the intent, and its workflow started at
the entry step (`lifecycle/scenarios.py`), all or nothing. The keys themselves (the store
keeps their hashes) go to `scenario-agents.json` in the home, mode 0600, before that write:
a key is never in the store without being somewhere its agent can read it.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import Response

from axme_cli.errors import ValidationFailed
from axme_cli.protocol import DEFAULT_MAX_DELIVERY_ATTEMPTS
from axme_daemon.api_body import json_answer
from axme_daemon.auth import AGENT_SCOPE, KeyRing, key_hash
from axme_daemon.authz import bound_sender
from axme_daemon.config import DaemonSettings
from axme_daemon.engine import Engine
from axme_daemon.intents import NewIntent, now_iso, request_hash
from axme_daemon.scenarios import Checked, check_bundle


class NotSupportedLocally(ValidationFailed):
    """What an AXME client asked for has no local counterpart."""

    code = "not_supported_locally"


def _agents_here(request: Request, engine: Engine) -> set[str]:
    """Addresses with an agent on this daemon: registered (supervised), holding an agent
    key, or with a worker that listened since the daemon started."""
    known = set(getattr(request.app.state.registry, "specs", None) or ())
    keys: KeyRing | None = getattr(request.app.state, "keys", None)
    if keys is not None:
        known |= keys.agent_addresses()
    known |= {w.address for w in engine.dispatcher.workers.values()}
    return known


async def known_agents(request: Request, engine: Engine, *wanted: str) -> set[str]:
    """Addresses with an agent: on this daemon, or, on a store daemons share, on any live
    daemon (`Store.known_addresses`). With `wanted`, the store is read only when one of
    them is not known here."""
    known = _agents_here(request, engine)
    if engine.store.shared and (not wanted or not known.issuperset(wanted)):
        known |= await engine.store.known_addresses()
    return known


async def _check(request: Request, engine: Engine, bundle: Any) -> Checked:
    checked = check_bundle(bundle)
    known = await known_agents(request, engine, *(a for a, _, _ in checked.agents.values()))
    for address, create, n in checked.agents.values():
        if address not in known and not create:
            checked.errors.append(
                f"agents[{n}].address: no agent {address} here, and create_if_missing is "
                "false (set it true to provision one with its own key)"
            )
    if checked.errors:
        checked.plan = {}
    return checked


def key_name(address: str) -> str:
    """The name a provisioned agent's key goes by (`axme keys list`)."""
    return ("scenario." + address.removeprefix("agent://").replace("/", "."))[:64]


def write_agent_keys(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Merge `entries` (by address) into the keys file: written whole to a new file of mode
    0600, then moved over the old one, so a reader never sees half of it."""
    current: dict[str, Any] = {}
    try:
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict) and isinstance(loaded.get("agents"), dict):
            current = loaded["agents"]
    except (OSError, ValueError):
        pass
    current.update(entries)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"agents": current}, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def add_scenario_routes(app: FastAPI, engine: Engine, settings: DaemonSettings) -> None:
    keys_file = settings.paths.scenario_agents

    @app.post("/v1/scenarios/validate", tags=["scenarios"])
    async def validate(request: Request, bundle: Annotated[Any, Body()]) -> dict[str, Any]:
        """Every problem of a ScenarioBundle at once (`errors`, `warnings`); nothing is
        created. `valid` is true when `errors` is empty."""
        checked = await _check(request, engine, bundle)
        out: dict[str, Any] = {
            "ok": True,
            "valid": not checked.errors,
            "errors": checked.errors,
            "warnings": checked.warnings,
        }
        if checked.plan:
            out["compile_id"] = checked.plan["compile_id"]
            out["steps"] = [s["step_id"] for s in checked.plan["steps"]]
        return out

    @app.post("/v1/scenarios/apply", tags=["scenarios"])
    async def apply(request: Request, bundle: Annotated[Any, Body()]) -> Response:
        """Provision the agents (`create_if_missing`), create the intent and start its
        workflow, in one write. A bad bundle is a 422 listing every error
        (`error.details.errors`) and creates nothing."""
        checked = await _check(request, engine, bundle)
        if checked.errors:
            raise ValidationFailed(
                "; ".join(checked.errors),
                details={"errors": checked.errors, "warnings": checked.warnings},
            )
        plan = checked.plan
        key = request.headers.get("idempotency-key") or bundle.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
            raise ValidationFailed("idempotency_key: must be a string of 1 to 200 characters")
        known = await known_agents(request, engine, *(a for a, _, _ in checked.agents.values()))
        ensure_tcp = getattr(request.app.state, "ensure_tcp", None)
        base_url = await ensure_tcp() if ensure_tcp else getattr(app.state, "tcp_url", None)
        roles: dict[str, str] = {}
        fresh: dict[str, dict[str, Any]] = {}
        made: list[tuple[str, str, list[str]]] = []
        for role, (address, _, _) in checked.agents.items():
            roles[role] = address
            if address in known or address in fresh:
                continue
            secret = "axme_" + secrets.token_urlsafe(32)
            name = key_name(address)
            made.append((name, key_hash(secret), [AGENT_SCOPE + address]))
            fresh[address] = {
                "address": address,
                "api_key": secret,
                "base_url": base_url,
                "service_account_id": name,
                "key_name": name,
                "scenario_id": plan["scenario_id"],
                "created_at": now_iso(),
            }
        first = next((s["address"] for s in plan["steps"] if s["kind"] == "agent"), None)
        intent = plan["intent"]
        body = {k: v for k, v in bundle.items() if k != "idempotency_key"}
        new = NewIntent(
            intent_type=intent["type"],
            to_agent=first or f"agent://scenarios/{plan['scenario_id']}",
            payload=intent["payload"],
            from_agent=bound_sender(request, None),
            correlation_id=plan["scenario_id"],
            deadline_at=intent["deadline_at"],
            max_delivery_attempts=intent["max_delivery_attempts"] or DEFAULT_MAX_DELIVERY_ATTEMPTS,
            idempotency_key=f"scenario:{key}" if key else None,
            request_hash=request_hash(body) if key else None,
        )
        if fresh:
            write_agent_keys(keys_file, fresh)
        created_intent, created = await engine.run_workflow(new, plan, plan["scenario_id"], made)
        keyring: KeyRing | None = getattr(request.app.state, "keys", None)
        if created and keyring is not None:
            for name, digest, scopes in made:
                keyring.learn(name, digest, scopes)
        provisioned = [fresh[a] for a in fresh] if created else []
        workflow = await engine.workflow(created_intent.intent_id) or {}
        return json_answer(
            {
                "ok": True,
                "intent_id": created_intent.intent_id,
                "scenario_id": plan["scenario_id"],
                "compile_id": plan["compile_id"],
                "workflow_compile_id": plan["compile_id"],
                "status": created_intent.status.value,
                "pending_with": workflow.get("pending_with"),
                "current_step": workflow.get("current_step"),
                "idempotent": not created,
                "agents": [
                    {"role": role, "address": address, "created": address in fresh and created}
                    for role, address in roles.items()
                ],
                "agents_provisioned": [
                    {
                        "address": p["address"],
                        "agent_address": p["address"],
                        "service_account_id": p["key_name"],
                        "sa_id": p["key_name"],
                    }
                    for p in provisioned
                ],
                "agent_keys_file": str(keys_file) if provisioned else None,
                "base_url": base_url,
                "warnings": checked.warnings,
                "deadline_at": created_intent.deadline_at,
                "created_at": created_intent.created_at,
                "intent": created_intent.to_wire(),
            }
        )

    @app.post("/v1/intents/{intent_id}/controls", tags=["intents"])
    async def controls(intent_id: str, body: Annotated[Any, Body()]) -> dict[str, Any]:
        """AXME's controls patch: not supported locally (a 422 naming what was asked)."""
        await engine.get(intent_id)
        patch = body.get("controls_patch") if isinstance(body, dict) else None
        asked = sorted(patch) if isinstance(patch, dict) else []
        raise NotSupportedLocally(
            f"controls_patch ({', '.join(asked) or 'empty'}): changing a running intent's "
            "controls is not supported locally; set them when sending it (deadline_at, "
            "max_delivery_attempts, a human_task's deadline_seconds, a scenario step's "
            "step_deadline_seconds and retry)",
            details={"intent_id": intent_id, "unsupported": asked},
        )

    @app.post("/v1/intents/{intent_id}/policy", tags=["intents"])
    async def policy(intent_id: str, body: Annotated[Any, Body()]) -> dict[str, Any]:
        """AXME's policy patch (grants, envelope): not supported locally (a 422)."""
        await engine.get(intent_id)
        asked = sorted(
            f"{part}.{k}"
            for part in ("grants_patch", "envelope_patch")
            for k in ((body.get(part) or {}) if isinstance(body, dict) else {})
        )
        raise NotSupportedLocally(
            f"policy ({', '.join(asked) or 'empty'}): intent grants and envelopes are not "
            "supported locally; who may act is the key's scopes (axme keys), and attempts "
            "and deadlines are set when sending the intent",
            details={"intent_id": intent_id, "unsupported": asked},
        )
