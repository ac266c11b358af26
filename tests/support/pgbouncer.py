"""A real PgBouncer in transaction mode in front of a test database.

Debian's ``pgbouncer`` package (``.ci/run`` installs it). It runs from a config written to a
temporary directory, trusts its clients, and passes every database name through to the
server of the URL it is given. PgBouncer refuses to run as root, so as root it runs as the
owner of the server's socket directory (the embedded server's user), else ``nobody``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from tests.support import proc

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

CONF = """
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_reset_query =
logfile =
pidfile =
"""


def missing() -> str | None:
    if not os.access(PGBOUNCER, os.X_OK):
        return f"{PGBOUNCER} is missing (apt-get install pgbouncer)"
    return None


def require() -> None:
    """Skip the test when there is no pgbouncer; in CI (``CI`` set) fail instead."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"in CI a skip is a failure: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True, slots=True)
class Bouncer:
    port: int
    log: Path

    def url(self, database_url: str) -> str:
        """``database_url`` (same user and database) through this PgBouncer."""
        parts = urlsplit(database_url)
        user = parts.username or "postgres"
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{self.port}", parts.path, "", ""))


def _server(database_url: str) -> tuple[str, int, str]:
    """(host or socket directory, port, user) of the server behind ``database_url``."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    port = int(query.get("port", [parts.port or 5432])[0])
    return host, port, parts.username or "postgres"


def _user_for(host: str) -> str:
    """Who may reach the server: the owner of its socket directory, else anyone."""
    if host.startswith("/"):
        return pwd.getpwuid(os.stat(host).st_uid).pw_name
    return "nobody"


@asynccontextmanager
async def running(
    database_url: str, directory: Path, *, pool_size: int = 4
) -> AsyncIterator[Bouncer]:
    """PgBouncer in front of ``database_url``'s server, with at most ``pool_size`` server
    connections per database and user: fewer than the clients, so they are shared."""
    host, port, user = _server(database_url)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    listen = proc.free_port()
    conf = directory / "pgbouncer.ini"
    conf.write_text(
        CONF.format(host=host, port=port, listen=listen, dir=directory, pool_size=pool_size)
    )
    (directory / "users.txt").write_text(f'"{user}" ""\n')
    log = directory / "pgbouncer.log"
    as_user = ["-u", _user_for(host)] if os.geteuid() == 0 else []
    with log.open("ab") as out:
        bouncer = subprocess.Popen([PGBOUNCER, *as_user, str(conf)], stdout=out, stderr=out)
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", listen)
                writer.close()
                break
            except OSError:
                if bouncer.poll() is not None:
                    raise AssertionError(f"pgbouncer exited:\n{log.read_text()}") from None
                await asyncio.sleep(0.05)
        yield Bouncer(port=listen, log=log)
    finally:
        bouncer.terminate()
        try:
            bouncer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bouncer.kill()
            bouncer.wait()


@asynccontextmanager
async def routed(how: str, database_url: str, directory: Path) -> AsyncIterator[dict[str, str]]:
    """Replicas' settings beyond DATABASE_URL: none (``direct``), or (``pgbouncer``) a
    PgBouncer's URL for the pools, with fewer server connections than the replicas' pools
    hold, and the database's own as the direct URL."""
    if how == "direct":
        yield {}
        return
    require()
    async with running(database_url, directory, pool_size=6) as bouncer:
        yield {
            "DATABASE_URL": bouncer.url(database_url),
            "GATEWAY_DATABASE_DIRECT_URL": database_url,
        }
