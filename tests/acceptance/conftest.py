"""The PostgreSQL tier's fixtures, for the tests that run several daemons on one database."""

from tests.integration.conftest import postgresql_server, postgresql_url

__all__ = ["postgresql_server", "postgresql_url"]
