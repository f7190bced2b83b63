"""AXME's ScenarioBundle, as a domain: what a bundle may say, and the plan it compiles to.

No I/O. `check_bundle` lists every problem at once (`errors`, and `warnings` for what runs
but looks wrong), so `validate` and `apply` answer the same; `apply` writes nothing unless
`errors` is empty. The plan is what the step engine (`lifecycle/scenarios.py`) runs: steps
by index, each an agent task (delivered to its role's agent) or a person's sign-off (a task).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from axme_cli.protocol import AGENT_ADDRESS_RE, INTENT_TYPE_RE, MAX_DURATION_SECONDS
from axme_daemon.intents import canonical_json
from axme_daemon.tasks import TaskSpec

AGENT_TOOLS = frozenset({"tool.agent.task.v1"})
HUMAN_TOOLS = frozenset({"tool.approval.human_signoff", "tool.human.approval.v1"})
#: Delivery modes an agent of a local scenario may use: both read the agent stream.
LOCAL_DELIVERY = ("stream", "poll")
MAX_STEPS = 100
MAX_RETRIES = 100
#: A step's retry delay when the bundle gives none (AXME's default).
DEFAULT_RETRY_DELAY = 30.0
SCENARIO_ID_RE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
_TOP = {
    "scenario_id", "title", "description", "idempotency_key", "agents", "humans", "workflow",
    "intent",
}  # fmt: skip
#: Step timing keys a human step hands to its task.
_TASK_TIMING = (
    "remind_after_seconds", "remind_interval_seconds", "max_reminders", "escalate_to",
)  # fmt: skip


def agent_address(raw: str) -> str | None:
    """A scenario's `address` (a bare name or `agent://...`) as the address agents listen
    on: `listen("name")` is `agent://name`. None when it is not an address."""
    address = raw if raw.startswith("agent://") else f"agent://{raw}"
    return address if AGENT_ADDRESS_RE.match(address) else None


@dataclass
class Checked:
    """A bundle's problems, and (when it has none) its plan."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    #: The agents it names: role -> (address, create_if_missing, index in agents[]).
    agents: dict[str, tuple[str, bool, int]] = field(default_factory=dict)


def _number(
    out: Checked, where: str, value: Any, *, low: float = 0, high: float = MAX_DURATION_SECONDS
) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
        out.errors.append(f"{where}: must be a number above {low:g} and at most {high:.0f}")
        return None
    return float(value)


def _text(out: Checked, where: str, value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            out.errors.append(f"{where}: is required")
        return None
    if not isinstance(value, str) or not value.strip():
        out.errors.append(f"{where}: must be a non-empty string")
        return None
    return value


def _objects(out: Checked, where: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        out.errors.append(f"{where}: must be a list")
        return []
    items = []
    for n, item in enumerate(value):
        if isinstance(item, dict):
            items.append(item)
        else:
            out.errors.append(f"{where}[{n}]: must be a JSON object")
            items.append({})
    return items


def check_bundle(bundle: Any) -> Checked:
    out = Checked()
    if not isinstance(bundle, dict):
        out.errors.append("request body: must be a JSON object (a ScenarioBundle)")
        return out
    scenario_id = _text(out, "scenario_id", bundle.get("scenario_id"), required=True)
    if scenario_id is not None and not SCENARIO_ID_RE.match(scenario_id):
        out.errors.append(
            f"scenario_id: must be dotted lowercase words, like human.cli.v1 (got {scenario_id!r})"
        )
    for name in ("title", "description"):
        if bundle.get(name) is not None and not isinstance(bundle[name], str):
            out.errors.append(f"{name}: must be a string")
    key = bundle.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
        out.errors.append("idempotency_key: must be a string of 1 to 200 characters")
    for unknown in sorted(set(bundle) - _TOP):
        out.warnings.append(f"{unknown}: not a ScenarioBundle key; ignored")
    roles = _check_agents(out, bundle.get("agents"))
    humans = _check_humans(out, bundle.get("humans"), roles)
    steps = _check_workflow(out, bundle.get("workflow"), roles, humans)
    intent = _check_intent(out, bundle.get("intent"))
    used = {s.get("role") for s in steps}
    for role in sorted((set(roles) | set(humans)) - used):
        out.warnings.append(f"role {role!r} is declared but no step is assigned to it")
    if not out.errors:
        out.plan = {
            "scenario_id": scenario_id,
            "title": bundle.get("title"),
            "compile_id": "cmp_" + hashlib.sha256(canonical_json(bundle).encode()).hexdigest()[:24],
            "steps": steps,
            "entry": _entry(bundle),
            "intent": intent,
        }
    return out


def _check_agents(out: Checked, raw: Any) -> dict[str, str]:
    roles: dict[str, str] = {}
    seen: set[str] = set()
    for n, agent in enumerate(_objects(out, "agents", raw)):
        where = f"agents[{n}]"
        role = _text(out, f"{where}.role", agent.get("role"), required=True)
        raw_address = _text(out, f"{where}.address", agent.get("address"), required=True)
        address = agent_address(raw_address) if raw_address else None
        if raw_address and address is None:
            out.errors.append(
                f"{where}.address: {raw_address!r} is not an agent name or agent:// address"
            )
        mode = agent.get("delivery_mode", "stream")
        if mode not in LOCAL_DELIVERY:
            out.errors.append(
                f"{where}.delivery_mode: {mode!r} is not supported locally "
                f"(use {' or '.join(LOCAL_DELIVERY)}: agents read the agent stream)"
            )
        create = agent.get("create_if_missing", False)
        if not isinstance(create, bool):
            out.errors.append(f"{where}.create_if_missing: must be true or false")
        if role is not None:
            if role in seen:
                out.errors.append(f"{where}.role: {role!r} is declared twice")
            elif address is not None:
                roles[role] = address
                out.agents[role] = (address, create is True, n)
            seen.add(role)
    return roles


def _check_humans(out: Checked, raw: Any, agents: dict[str, str]) -> set[str]:
    roles: set[str] = set()
    for n, human in enumerate(_objects(out, "humans", raw)):
        role = _text(out, f"humans[{n}].role", human.get("role"), required=True)
        if role is None:
            continue
        if role in roles or role in agents:
            out.errors.append(f"humans[{n}].role: {role!r} is declared twice")
        roles.add(role)
    return roles


def _check_workflow(
    out: Checked, raw: Any, agents: dict[str, str], humans: set[str]
) -> list[dict[str, Any]]:
    if not isinstance(raw, dict):
        out.errors.append("workflow: is required (an object with steps)")
        return []
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not 1 <= len(raw_steps) <= MAX_STEPS:
        out.errors.append(f"workflow.steps: must be a list of 1 to {MAX_STEPS} steps")
        return []
    ids: list[str | None] = []
    for n, step in enumerate(_objects(out, "workflow.steps", raw_steps)):
        step_id = _text(out, f"workflow.steps[{n}].step_id", step.get("step_id"), required=True)
        if step_id is not None and step_id in ids:
            out.errors.append(f"workflow.steps[{n}].step_id: {step_id!r} is used twice")
        ids.append(step_id)
    index = {s: n for n, s in enumerate(ids) if s is not None}
    entry = raw.get("entry_step")
    if entry is not None and entry not in index:
        out.errors.append(f"workflow.entry_step: {entry!r} is not a step_id of workflow.steps")
    steps = []
    for n, step in enumerate(raw_steps):
        if isinstance(step, dict):
            steps.append(_check_step(out, f"workflow.steps[{n}]", step, agents, humans, index))
    return steps


def _check_step(
    out: Checked,
    where: str,
    step: dict[str, Any],
    agents: dict[str, str],
    humans: set[str],
    index: dict[str, int],
) -> dict[str, Any]:
    tool = step.get("tool_id")
    role = step.get("assigned_to")
    plan: dict[str, Any] = {"step_id": step.get("step_id"), "tool_id": tool, "role": role}
    if tool in AGENT_TOOLS:
        plan["kind"] = "agent"
        if role not in agents:
            known = ", ".join(sorted(agents)) or "none declared"
            out.errors.append(
                f"{where}.assigned_to: an agent step needs the role of one of agents[] "
                f"(got {role!r}; roles: {known})"
            )
        else:
            plan["address"] = agents[role]
    elif tool in HUMAN_TOOLS:
        plan["kind"] = "human"
        if role is not None and role not in humans:
            out.errors.append(f"{where}.assigned_to: {role!r} is not a role of humans[]")
        if step.get("requires_approval") is False:
            out.warnings.append(
                f"{where}.requires_approval: false, yet a sign-off step always waits for a person"
            )
        plan["task"] = _step_task(out, where, step)
    else:
        supported = ", ".join(sorted(AGENT_TOOLS | HUMAN_TOOLS))
        out.errors.append(
            f"{where}.tool_id: {tool!r} is not supported locally (supported: {supported})"
        )
    deadline = _number(out, f"{where}.step_deadline_seconds", step.get("step_deadline_seconds"))
    if deadline is not None:
        plan["deadline_seconds"] = deadline
    retry = step.get("retry")
    if retry is not None:
        plan["retry"] = _check_retry(out, f"{where}.retry", retry)
    for jump in ("on_success", "on_failure"):
        target = step.get(jump)
        if target is None:
            continue
        if target not in index:
            out.errors.append(f"{where}.{jump}: {target!r} is not a step_id of workflow.steps")
        else:
            plan[jump] = index[target]
    return plan


def _check_retry(out: Checked, where: str, retry: Any) -> dict[str, Any]:
    if not isinstance(retry, dict):
        out.errors.append(f"{where}: must be an object (max_retries, retry_delay_seconds)")
        return {}
    count = retry.get("max_retries", 0)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_RETRIES:
        out.errors.append(f"{where}.max_retries: must be a whole number from 0 to {MAX_RETRIES}")
        count = 0
    delay = retry.get("retry_delay_seconds", DEFAULT_RETRY_DELAY)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        out.errors.append(f"{where}.retry_delay_seconds: must be a number of seconds")
        delay = DEFAULT_RETRY_DELAY
    elif not 0 <= delay <= MAX_DURATION_SECONDS:
        out.errors.append(
            f"{where}.retry_delay_seconds: must be from 0 to {MAX_DURATION_SECONDS} seconds"
        )
    return {"max_retries": count, "retry_delay_seconds": float(delay)}


def _step_task(out: Checked, where: str, step: dict[str, Any]) -> dict[str, Any]:
    """The task a sign-off step opens: its `human_task`, with the step's timing; its deadline
    ends the intent TIMED_OUT (or takes `on_failure`)."""
    raw = step.get("human_task") or {}
    if not isinstance(raw, dict):
        out.errors.append(f"{where}.human_task: must be a JSON object")
        raw = {}
    task: dict[str, Any] = {"title": f"Approve step {step.get('step_id')}", **raw}
    for key in _TASK_TIMING:
        if step.get(key) is not None:
            task.setdefault(key, step[key])
    if step.get("step_deadline_seconds") is not None:
        task.setdefault("deadline_seconds", step["step_deadline_seconds"])
        task.setdefault("on_timeout", "fail")
    if step.get("assigned_to") and "assignees" not in task:
        task["assignees"] = [step["assigned_to"]]
    try:
        return TaskSpec(**task).model_dump(exclude_none=True)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            out.errors.append(f"{where}.human_task{'.' + loc if loc else ''}: {message}")
        return task


def _check_intent(out: Checked, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        out.errors.append("intent: is required (an object with type and payload)")
        return {}
    kind = _text(out, "intent.type", raw.get("type") or raw.get("intent_type"), required=True)
    if kind is not None and not INTENT_TYPE_RE.match(kind):
        out.errors.append(
            f"intent.type: must be dotted words without spaces, like intent.deploy.v1 "
            f"(got {kind!r})"
        )
    payload = raw.get("payload", {})
    if not isinstance(payload, dict):
        out.errors.append("intent.payload: must be a JSON object")
    attempts = raw.get("max_delivery_attempts")
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100
    ):
        out.errors.append("intent.max_delivery_attempts: must be a whole number from 1 to 100")
    deadline = raw.get("deadline_at")
    if deadline is not None and not isinstance(deadline, str):
        out.errors.append("intent.deadline_at: must be a timestamp string")
    for key in ("human_task", *_TASK_TIMING):
        if raw.get(key) is not None:
            out.warnings.append(
                f"intent.{key}: ignored locally; give it to the workflow's sign-off step"
            )
    return {
        "type": kind,
        "payload": payload if isinstance(payload, dict) else {},
        "max_delivery_attempts": attempts,
        "deadline_at": deadline,
    }


def _entry(bundle: dict[str, Any]) -> int:
    workflow = bundle["workflow"]
    entry = workflow.get("entry_step")
    ids = [s["step_id"] for s in workflow["steps"]]
    return ids.index(entry) if entry is not None else 0


def agent_then_person(address: str, human_task: dict[str, Any]) -> dict[str, Any]:
    """The plan of an intent sent to an agent with a `human_task`: the agent first, then the
    person (AXME's order)."""
    return {
        "implicit": True,
        "steps": [
            {"step_id": "agent", "kind": "agent", "address": address},
            {"step_id": "human", "kind": "human", "task": human_task},
        ],
        "entry": 0,
    }
