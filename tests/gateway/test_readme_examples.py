"""The README's quick-start walkthrough, run as written against a real `gateway serve`, so
the answers it shows cannot drift from what the server says.

As a new user would: nothing configured but a fresh home (the per-user data directory),
the server started from one directory and the `gateway` commands run from another. Keys
made that way must work at the server (issue 17: they answered 401 from another folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import proc, readme

pytestmark = pytest.mark.timeout(240)


def _walkthrough() -> tuple[list[readme.Example], list[readme.Example]]:
    """The walkthrough's first block (run whole) and what the second shows an answer for.

    The rest of the second block waits for real seconds and its coupon depends on the hour
    in Paris (quiet hours), so it is not run here; the offer tests cover that story."""
    sh = readme.blocks()
    first = next(i for i, b in enumerate(sh) if "localhost:8080/readyz" in b)
    # Of the second block, the offer's creation: the report it ends with depends on the
    # pings before it (tests/gateway/test_reports.py walks that flow with a test clock).
    shown = [
        e
        for e in readme.examples(sh[first + 1])
        if e.shown and "-X POST localhost:8080/v1/offers" in e.command
    ]
    return readme.examples(sh[first]), shown


def test_the_walkthrough_is_found_and_shows_answers() -> None:
    first, second = _walkthrough()
    assert sum(1 for e in first if e.shown) >= 6
    assert {"APP", "MANAGER", "SHOPPER"} <= {n for e in first for n in e.placeholders}
    assert second and all("/v1/offers" in e.command for e in second)


async def _bash(command: str, cwd: Path, environ: dict[str, str]) -> str:
    child = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=cwd,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 120)
    assert child.returncode == 0, f"{command}\n{err.decode()}"
    return out.decode()


async def _fences_indexed(url: str, manager: str, ping: str) -> None:
    """Wait until the server's fence index holds a fence in reach of the ping's point: a
    person types slower than the index follows a new geofence; a script does not."""
    found = re.search(r'lat\\": ([0-9.]+), \\"lon\\": ([0-9.]+)', ping)
    assert found, ping
    body = {"lat": float(found[1]), "lon": float(found[2]), "accuracy_m": 12}
    headers = {"Authorization": f"Bearer {manager}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.post(f"{url}/v1/offers/preview", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                if (await r.json())["fences"]:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError("the new geofence never reached the fence index")


def _token(answers: list[Any], role: str) -> str:
    tokens = [
        a["token"]
        for a in answers
        if isinstance(a, dict) and str(a.get("token", "")).startswith(f"gw_{role}_")
    ]
    assert tokens, f"no {role} token answered before it is needed"
    return str(tokens[-1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
async def test_the_readme_walkthrough_answers_what_it_shows(tmp_path: Path) -> None:
    first, second = _walkthrough()
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "gateway").exists(), "the `gateway` script is not installed"
    environ = proc.env(None, tmp_path, XDG_DATA_HOME=str(tmp_path / "home-data"))
    del environ["GATEWAY_DATA_DIR"]  # the default, as a new user has it
    environ["PATH"] = f"{bin_dir}{os.pathsep}{environ.get('PATH', '')}"
    served = proc.Served(proc.free_port(), environ, log_file=tmp_path / "serve.log")
    await served.start()
    elsewhere = tmp_path / "another-shell"
    elsewhere.mkdir()
    answers: list[Any] = []
    try:
        await served.wait_ready(timeout=150)
        for example in first + second:
            for name, role in example.placeholders.items():
                environ[name] = _token(answers, role)
            if example.placeholders:
                continue
            command = example.command.replace("localhost:8080", served.url.removeprefix("http://"))
            if "/v1/pings" in command:
                await _fences_indexed(served.url, _token(answers, "manager"), command)
            out = await _bash(command, elsewhere, environ)
            if not example.shown:
                continue
            answer = json.loads(out)
            answers.append(answer)
            assert readme.missing(example.shown, answer) == [], (example.command, answer)
    finally:
        await served.stop()
    assert "created a new, empty embedded database" in served.log
    assert not (elsewhere / ".gateway").exists()


def test_shown_answers_are_compared_field_by_field() -> None:
    shown = '{"status":"ready","schema_version":3,"token":"gw_app_...","at":"...","offers":[]}'
    answer = {"status": "ready", "schema_version": 3, "token": "gw_app_x", "at": "t", "offers": []}
    assert readme.missing(shown, answer) == []
    assert readme.missing(shown, {**answer, "schema_version": 12}) == [("schema_version", 3)]
    assert readme.missing(shown, {**answer, "token": "gw_pos_x"}) == [("token", "gw_app_...")]
    assert readme.missing(shown, {**answer, "offers": [{}]}) == [("offers", [])]
    nested = {"transitions": [{"event": "enter", "store_id": "1"}]}
    assert readme.missing('"event":"enter","store_id":"1"', nested) == []
    assert readme.missing('"event":"exit"', nested) == [("event", "exit")]
