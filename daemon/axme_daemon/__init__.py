"""The axme daemon: owns every intent, serves the /v1 API over a Unix socket."""

from axme_cli import __version__

__all__ = ["__version__"]
