"""axme: durable execution for agent work, without a cluster."""

__version__ = "0.1.0"
