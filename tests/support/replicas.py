"""Several `gateway serve` processes on one database behind a real nginx, for tests.

nginx is Debian's package (`.ci/run` installs it); it runs as this user from a config
written to a temporary directory, round-robin over the replicas.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support import proc

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream gateway {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_next_upstream error timeout http_502 http_503;
        location / {{ proxy_pass http://gateway; }}
    }}
}}
"""


class Cluster:
    def __init__(self, replicas: list[proc.Served], port: int, directory: Path) -> None:
        self.replicas = replicas
        self.url = f"http://127.0.0.1:{port}"
        self.directory = directory
        self.nginx: subprocess.Popen[bytes] | None = None

    def kill(self, i: int) -> None:
        """kill -9 one replica: no shutdown, no flush, connections cut."""
        served = self.replicas[i]
        assert served.proc is not None
        os.kill(served.proc.pid, signal.SIGKILL)

    async def restart(self, i: int) -> None:
        """Start replica ``i`` again on its port (after :meth:`kill`) and wait until ready."""
        served = self.replicas[i]
        assert served.proc is not None
        await served.proc.wait()
        await served.start()
        await served.wait_ready()


@asynccontextmanager
async def cluster(
    environ: Mapping[str, str], directory: Path, n: int = 3, *, log_files: bool = False
) -> AsyncIterator[Cluster]:
    """``n`` replicas behind nginx; with ``log_files`` each writes its stderr to
    ``directory/replica<i>.log`` instead of a pipe (a long run would fill the pipe)."""
    directory.mkdir(parents=True, exist_ok=True)
    replicas = [
        proc.Served(
            proc.free_port(),
            environ,
            log_file=directory / f"replica{i}.log" if log_files else None,
        )
        for i in range(n)
    ]
    port = proc.free_port()
    conf = directory / "nginx.conf"
    servers = "\n".join(f"        server 127.0.0.1:{r.port};" for r in replicas)
    conf.write_text(CONF.format(dir=directory, servers=servers, port=port))
    c = Cluster(replicas, port, directory)
    try:
        for r in replicas:
            await r.start()
        for r in replicas:
            await r.wait_ready()
        c.nginx = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield c
    finally:
        if c.nginx is not None:
            c.nginx.terminate()
            c.nginx.wait(timeout=10)
        for r in replicas:
            if r.proc is not None:
                await r.stop()
