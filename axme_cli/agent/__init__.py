"""The agent SDK: plain Python handlers made durable by memoized steps.

from axme_cli.agent import Agent

agent = Agent("agent://myorg/production/data-pipeline")

@agent.handler("intent.pipeline.process.v1")
def process(ctx):
    rows = ctx.step("extract", extract, ctx.payload["source"])  # recorded once
    ctx.progress("extracted", rows=len(rows))
    ctx.step("load", load, rows, compensate=unload)  # unload(result, rows) if it fails later
    return {"loaded": len(rows)}

agent.run()
"""

from typing import TYPE_CHECKING, Any

from axme_cli.agent.context import (
    ChildFailed,
    Context,
    Decision,
    IntentCanceled,
    Rejected,
    ReplayMismatch,
    RetryableError,
    StepFailed,
    StepResultNotJSON,
)
from axme_cli.agent.worker import Agent

if TYPE_CHECKING:
    from axme_cli.agent.async_context import AsyncContext


def __getattr__(name: str) -> Any:
    """`AsyncContext` on first use: sync-only agents never import asyncio."""
    if name == "AsyncContext":
        from axme_cli.agent.async_context import AsyncContext

        return AsyncContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Agent",
    "AsyncContext",
    "ChildFailed",
    "Context",
    "Decision",
    "IntentCanceled",
    "Rejected",
    "ReplayMismatch",
    "RetryableError",
    "StepFailed",
    "StepResultNotJSON",
]
