"""The agent SDK: plain Python handlers made durable by memoized steps.

from axme_cli.agent import Agent

agent = Agent("agent://myorg/production/data-pipeline")

@agent.handler("intent.pipeline.process.v1")
def process(ctx):
    rows = ctx.step("extract", extract, ctx.payload["source"])  # recorded once
    ctx.progress("extracted", rows=len(rows))
    return {"loaded": len(rows)}

agent.run()
"""

from axme_cli.agent.context import (
    AsyncContext,
    ChildFailed,
    Context,
    Decision,
    ReplayMismatch,
    RetryableError,
    StepResultNotJSON,
)
from axme_cli.agent.worker import Agent

__all__ = [
    "Agent",
    "AsyncContext",
    "ChildFailed",
    "Context",
    "Decision",
    "ReplayMismatch",
    "RetryableError",
    "StepResultNotJSON",
]
