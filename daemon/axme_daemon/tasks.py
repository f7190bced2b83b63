"""Human tasks, as a domain: what a task may ask, and whether a decision answers it.

No I/O. The store records tasks and decisions; this module says what is valid, so the CLI,
the inbox, the AXME `/resume` dialects and timeouts all apply the same rules.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from axme_cli.errors import ValidationFailed
from axme_cli.protocol import (
    DEFAULT_OUTCOMES,
    MAX_DURATION_SECONDS,
    MAX_REMINDERS,
    MIN_REMIND_SECONDS,
    NEGATIVE_OUTCOMES,
)

TASK_TYPES = frozenset(
    {
        "approval", "confirmation", "review", "form", "clarification", "manual_action",
        "override", "assignment", "provide_data", "attach_file", "validate_real_world",
        "validate_output", "delegation", "reroute", "escalate",
    }
)  # fmt: skip
ON_TIMEOUT = ("reject", "approve", "fail", "escalate")


class TaskSpec(BaseModel):
    """A human task as an intent's `human_task` or an agent's `ctx.ask` describes it."""

    model_config = ConfigDict(extra="allow")

    title: str = Field(min_length=1, max_length=255)
    task_type: str = "approval"
    description: str | None = Field(default=None, max_length=2000)
    details: Any = None
    allowed_outcomes: list[str] | None = Field(default=None, min_length=1, max_length=20)
    required_comment: bool = False
    evidence_required: bool = False
    form_schema: dict[str, Any] | None = None
    assignees: list[str] | None = None
    remind_after_seconds: float | None = Field(
        default=None, ge=MIN_REMIND_SECONDS, le=MAX_DURATION_SECONDS
    )
    remind_interval_seconds: float | None = Field(
        default=None, ge=MIN_REMIND_SECONDS, le=MAX_DURATION_SECONDS
    )
    #: At most MAX_REMINDERS, which is also the cap when it is not given.
    max_reminders: int | None = Field(default=None, ge=0, le=MAX_REMINDERS)
    deadline_seconds: float | None = Field(default=None, gt=0, le=MAX_DURATION_SECONDS)
    on_timeout: str = "reject"
    escalate_to: str | None = None
    reject_status: str = "CANCELED"
    #: A handler's approval: "compensate" cancels the intent on a no, its steps undone.
    on_reject: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """AXME's names for the same timing fields."""
        if isinstance(data, dict) and "deadline_seconds" not in data:
            if "step_deadline_seconds" in data:
                data = {**data, "deadline_seconds": data["step_deadline_seconds"]}
        return data

    @field_validator("task_type")
    @classmethod
    def _task_type(cls, value: str) -> str:
        if value not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {', '.join(sorted(TASK_TYPES))}")
        return value

    @field_validator("on_reject")
    @classmethod
    def _on_reject(cls, value: str | None) -> str | None:
        if value not in (None, "return", "compensate"):
            raise ValueError("on_reject must be return or compensate")
        return value

    @field_validator("on_timeout")
    @classmethod
    def _on_timeout(cls, value: str) -> str:
        if value not in ON_TIMEOUT:
            raise ValueError(f"on_timeout must be one of {', '.join(ON_TIMEOUT)}")
        return value

    @field_validator("reject_status")
    @classmethod
    def _reject_status(cls, value: str) -> str:
        if value not in ("CANCELED", "FAILED"):
            raise ValueError("reject_status must be CANCELED or FAILED")
        return value

    @field_validator("form_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"form_schema is not a valid JSON Schema: {exc.message}") from None
        return value

    @model_validator(mode="after")
    def _escalation(self) -> TaskSpec:
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError("on_timeout escalate needs escalate_to")
        if self.on_timeout != "reject" and self.deadline_seconds is None:
            raise ValueError("on_timeout needs deadline_seconds")
        return self

    def outcomes(self) -> tuple[str, ...]:
        return tuple(self.allowed_outcomes or DEFAULT_OUTCOMES)


def check_decision(
    spec: dict[str, Any], outcome: str, comment: str | None, data: dict[str, Any]
) -> None:
    """Raise `ValidationFailed` (422) unless the decision answers the task as it asks."""
    # Checked when the task was opened; a task stored under older bounds stays decidable.
    task = TaskSpec.model_construct(**spec)
    allowed = task.outcomes()
    if outcome not in allowed:
        raise ValidationFailed(
            f"outcome {outcome!r} is not allowed for this task (allowed: {', '.join(allowed)})",
            details={"allowed_outcomes": list(allowed)},
        )
    if task.required_comment and not (comment or "").strip():
        raise ValidationFailed("this task requires a comment (-c/--comment)")
    if task.evidence_required and not data.get("evidence"):
        raise ValidationFailed("this task requires evidence (--data evidence=...)")
    if task.form_schema is not None:
        from jsonschema import Draft202012Validator

        errors = sorted(
            Draft202012Validator(task.form_schema).iter_errors(data), key=lambda e: list(e.path)
        )
        if errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.path) or 'form'}: {e.message}" for e in errors[:5]
            )
            raise ValidationFailed(
                f"the form does not validate: {problems}",
                details={"errors": [e.message for e in errors]},
            )


def is_approval(outcome: str) -> bool:
    return outcome not in NEGATIVE_OUTCOMES
