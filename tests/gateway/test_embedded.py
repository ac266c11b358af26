"""The embedded PostgreSQL: one per-user data directory whatever the current directory, a
loud word when a command creates a new database, and a server that never outlives its last
user, however that user ended (SIGTERM, SIGINT, ``kill -9``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from gateway import datadir, settings
from tests.support import proc

pytestmark = pytest.mark.timeout(240)


def _handles(data_dir: Path) -> list[int]:
    path = data_dir / "pg" / ".handle_pids.json"
    return json.loads(path.read_text()) if path.exists() else []


def _dead(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not psutil.pid_exists(pid)]


def _postmaster(data_dir: Path) -> int | None:
    """The PID of the data directory's running PostgreSQL, or None."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


async def _start(environ: dict[str, str], *args: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as handle:
        return await asyncio.create_subprocess_exec(
            *proc.GATEWAY,
            *args,
            env=environ,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=handle,
        )


async def _wait_for(log: Path, text: str, child: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 150
    while text not in log.read_text(errors="replace"):
        assert child.returncode is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.2)


async def _serve(environ: dict[str, str], log: Path) -> proc.Served:
    served = proc.Served(proc.free_port(), environ, log_file=log)
    await served.start()
    await served.wait_ready(timeout=150)
    return served


async def _end(child: asyncio.subprocess.Process, signum: int) -> int:
    child.send_signal(signum)
    return await asyncio.wait_for(child.wait(), 60)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HOME": "/home/ann"}, "/home/ann/.local/share/gateway"),
        ({"HOME": "/home/ann", "XDG_DATA_HOME": "/data/ann"}, "/data/ann/gateway"),
        # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
        ({"HOME": "/home/ann", "XDG_DATA_HOME": "rel"}, "/home/ann/.local/share/gateway"),
    ],
)
def test_the_default_data_dir_is_per_user_not_per_directory(
    environ: dict[str, str], expected: str
) -> None:
    assert datadir.default_data_dir(environ) == Path(expected)
    assert settings.Settings.from_env(environ).data_dir == Path(expected)
    flagged = {**environ, "GATEWAY_DATA_DIR": "/srv/gw"}
    assert settings.Settings.from_env(flagged).data_dir == Path("/srv/gw")


async def test_commands_from_any_directory_share_one_database_and_say_when_it_is_new(
    tmp_path: Path,
) -> None:
    """The trap of issue 17: a command run from another directory made a second, empty
    database. Now it finds the same one; a new one is announced, and only a command that
    actually starts the server says it starts it."""
    environ = proc.env(None, tmp_path, XDG_DATA_HOME=str(tmp_path / "xdg"))
    del environ["GATEWAY_DATA_DIR"]
    data_dir = tmp_path / "xdg" / "gateway"
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()

    first = await _run_in(here, environ, "merchants", "create", "--name", "Corner Coffee")
    assert "created a new, empty embedded database" in first[2]
    assert "starting embedded PostgreSQL" in first[2]
    served = await _serve(environ, tmp_path / "serve.log")
    try:
        # The server runs: another command uses it without starting it, and finds the merchant.
        code, out, err = await _run_in(there, environ, "merchants", "list")
    finally:
        await served.stop()
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)] == ["Corner Coffee"]
    assert "starting embedded PostgreSQL" not in err
    assert "new, empty embedded database" not in err
    assert "new, empty embedded database" not in served.log
    assert (data_dir / "pg" / "PG_VERSION").exists()
    assert not (here / ".gateway").exists() and not (there / ".gateway").exists()
    # --data-dir names another directory: a new database, said loudly.
    code, out, err = await _run_in(
        there, environ, "--data-dir", str(tmp_path / "other"), "merchants", "list"
    )
    assert code == 0, err
    assert json.loads(out) == []
    assert "created a new, empty embedded database" in err
    assert _postmaster(data_dir) is None and _postmaster(tmp_path / "other") is None


async def _run_in(cwd: Path, environ: dict[str, str], *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        *proc.GATEWAY,
        *args,
        cwd=cwd,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_a_stopped_demo_serve_leaves_no_pid_and_no_server(tmp_path: Path) -> None:
    """SIGTERM to `gateway demo --serve`, the case the issue reported."""
    environ = proc.env(None, tmp_path / "data")
    log = tmp_path / "demo.log"
    args = ["demo", "--serve", "--port", str(proc.free_port()), "--shoppers", "4"]
    args += ["--stores", "2", "--hours", "0.25", "--out", str(tmp_path / "report.html")]
    child = await _start(environ, *args, log=log)
    await _wait_for(log, "keeps running at", child)
    assert _handles(tmp_path / "data") == [child.pid]
    await _end(child, signal.SIGTERM)
    assert _handles(tmp_path / "data") == []
    assert _postmaster(tmp_path / "data") is None, log.read_text()


async def test_the_server_stops_with_its_last_user_on_sigint_and_sigterm(tmp_path: Path) -> None:
    environ = proc.env(None, tmp_path / "data")
    first = await _serve(environ, tmp_path / "first.log")
    second = await _serve(environ, tmp_path / "second.log")
    assert first.proc is not None and second.proc is not None
    assert sorted(_handles(tmp_path / "data")) == sorted([first.proc.pid, second.proc.pid])
    await _end(first.proc, signal.SIGINT)
    # One user is left: the server stays up for it.
    assert _handles(tmp_path / "data") == [second.proc.pid]
    assert _postmaster(tmp_path / "data") is not None
    await _end(second.proc, signal.SIGTERM)
    assert _handles(tmp_path / "data") == []
    assert _postmaster(tmp_path / "data") is None


async def test_after_kill_9_the_next_command_prunes_the_pid_and_stops_the_server(
    tmp_path: Path,
) -> None:
    environ = proc.env(None, tmp_path / "data")
    served = await _serve(environ, tmp_path / "serve.log")
    assert served.proc is not None
    killed = served.proc.pid
    await _end(served.proc, signal.SIGKILL)
    # Nothing could run in the killed process: its PID is stale and the server still up.
    assert _dead(_handles(tmp_path / "data")) == [killed]
    assert _postmaster(tmp_path / "data") is not None
    code, _, err = await proc.run("merchants", "list", environ=environ)
    assert code == 0, err
    assert _handles(tmp_path / "data") == []
    assert _postmaster(tmp_path / "data") is None


def test_no_test_touches_the_real_users_data_dir() -> None:
    assert os.environ["XDG_DATA_HOME"] != str(Path.home() / ".local" / "share")
    assert "GATEWAY_DATA_DIR" not in os.environ
