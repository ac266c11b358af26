"""Running the real ``gateway`` command in subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

GATEWAY = [sys.executable, "-m", "gateway"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(database_url: str | None, data_dir: Path, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    out.pop("DATABASE_URL", None)
    if database_url is not None:
        out["DATABASE_URL"] = database_url
    out["GATEWAY_DATA_DIR"] = str(data_dir)
    out.update(extra)
    return out


async def run(*args: str, environ: Mapping[str, str], timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *GATEWAY,
        *args,
        env=dict(environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Served:
    """A ``gateway serve`` process; its stderr is collected for inspection."""

    def __init__(
        self, port: int, environ: Mapping[str, str], *extra: str, log_file: Path | None = None
    ) -> None:
        self.port = port
        # A file instead of the pipe: a chatty server under load would fill the pipe.
        self.log_file = log_file
        self.url = f"http://127.0.0.1:{port}"
        self._environ = dict(environ)
        self._extra = extra
        self.proc: asyncio.subprocess.Process | None = None
        self.log = ""

    async def start(self) -> None:
        handle = None if self.log_file is None else self.log_file.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *GATEWAY,
                "serve",
                "--port",
                str(self.port),
                *self._extra,
                env=self._environ,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE if handle is None else handle,
            )
        finally:
            if handle is not None:
                handle.close()  # the child has its own copy

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    await self.stop()
                    raise AssertionError(f"serve exited early:\n{self.log}")
                try:
                    async with session.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        await self.stop()
        raise AssertionError(f"serve not ready in {timeout}s:\n{self.log}")

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            _, err = await asyncio.wait_for(self.proc.communicate(), 30)
        except TimeoutError:
            self.proc.kill()
            _, err = await self.proc.communicate()
        self.log += (err or b"").decode()
        if self.log_file is not None and self.log_file.exists():
            self.log = self.log_file.read_text(errors="replace")
        assert self.proc.returncode is not None
        return self.proc.returncode
