"""What the second CI pass (the suite against a local PostgreSQL server) runs, and why.

The first pass runs every test on the embedded PostgreSQL. The second runs again what
depends on the server itself (``server``) plus a fixed sample of the rest (``sample``):
``pytest -m "server or sample"``. Keys are test files or test ids, relative to the root;
tests/conftest.py marks the collected tests from these tables.
"""

from __future__ import annotations

SERVER: dict[str, str] = {
    "tests/gateway/test_replicas.py": "replicas share one database: caps, kill -9, restart",
    "tests/gateway/test_serve.py": "serve processes racing to migrate, workers, NOTIFY sync",
    "tests/gateway/test_listen.py": "LISTEN/NOTIFY and a listener whose backend is killed",
    "tests/gateway/test_migrations.py": "migrations, advisory locks, the catalog's names",
    "tests/gateway/test_spool.py": "spool directories named by the server's URL, kill -9 replay",
    "tests/gateway/test_errors.py::test_database_down_is_503_with_retry_after": (
        "the server refuses connections and terminates the pool's backends"
    ),
}

SAMPLE: dict[str, str] = {
    "tests/gateway/test_smoke.py": "the app starts and answers on the server",
    "tests/gateway/test_cli.py": "the commands, in subprocesses given DATABASE_URL",
    "tests/gateway/test_offers.py": "offers, caps and budgets, redemptions under concurrency",
}


def marker_of(nodeid: str) -> str | None:
    """``server``, ``sample`` or None for a collected test id."""
    for name, table in (("server", SERVER), ("sample", SAMPLE)):
        if any(nodeid == key or nodeid.startswith((key + "::", key + "[")) for key in table):
            return name
    return None
