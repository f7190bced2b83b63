"""Request bodies of the /v1 API, validated at the edge (and documented in OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from axme_cli.protocol import (
    INTENT_TYPE_RE,
    RESOLVE_STATUSES,
    IntentStatus,
    agent_address,
)


class IntentBody(BaseModel):
    """What a new intent is: a create's body, or the child intent of a `ctx.call`."""

    model_config = ConfigDict(extra="ignore")

    intent_type: str = Field(max_length=200, examples=["intent.pipeline.process.v1"])
    to_agent: str = Field(max_length=500, examples=["agent://myorg/production/data-pipeline"])
    payload: dict[str, Any] = Field(default_factory=dict)
    from_agent: str | None = Field(default=None, max_length=500)

    @field_validator("intent_type")
    @classmethod
    def _intent_type(cls, value: str) -> str:
        if not INTENT_TYPE_RE.match(value):
            raise ValueError(
                "intent_type must be dotted words without spaces, like intent.pipeline.process.v1"
            )
        return value

    @field_validator("to_agent")
    @classmethod
    def _to_agent(cls, value: str) -> str:
        """A bare name is `agent://name`, as for the agent that listens on it."""
        try:
            return agent_address(value)
        except ValueError:
            raise ValueError(
                f"to_agent must be an agent address like agent://myorg/production/name "
                f"(or a bare name), got {value!r}"
            ) from None


class CreateIntent(IntentBody):
    """POST /v1/intents. Keys the daemon does not use yet are accepted and ignored."""

    #: An inbox address: the intent's completion is delivered to a thread there.
    reply_to: str | None = Field(default=None, max_length=500)
    correlation_id: str | None = Field(default=None, max_length=200)
    human_task: dict[str, Any] | None = None
    deadline_at: str | None = None
    #: Default: the registered agent's `max_delivery_attempts`, else 3.
    max_delivery_attempts: int | None = Field(default=None, ge=1, le=100)
    #: With a `human_task`: its agent works first, then the person decides (true), or the
    #: person alone (false). Default: the agent first when its address has an agent here.
    agent_first: bool | None = None

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        """`scheme://...` as given; a bare name is `agent://name`, as for `to_agent`."""
        if value is None or "://" in value:
            return value
        try:
            return agent_address(value)
        except ValueError:
            raise ValueError(
                f"reply_to must be an address like agent://myorg/production/inbox (or a bare"
                f" name), got {value!r}"
            ) from None


class ResolveIntent(BaseModel):
    """POST /v1/intents/{id}/resolve: end an intent from outside."""

    model_config = ConfigDict(extra="ignore")

    status: IntentStatus
    result: Any = None
    error: Any = None
    reason: str | None = Field(default=None, max_length=2000)
    actor: str | None = Field(default=None, max_length=200)

    @field_validator("status")
    @classmethod
    def _status(cls, value: IntentStatus) -> IntentStatus:
        if value not in RESOLVE_STATUSES:
            allowed = ", ".join(sorted(s.value for s in RESOLVE_STATUSES))
            raise ValueError(f"status must be one of {allowed}")
        return value
