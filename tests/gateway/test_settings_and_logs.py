"""Settings come from the environment in one frozen object; secrets never reach logs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from pathlib import Path

import pytest

from gateway import logs
from gateway.accounts import auth
from gateway.datadir import default_data_dir
from gateway.secret import Secret, mask_url
from gateway.settings import Settings, SettingsError


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://app:hunter2@db.internal:5432/gw",
            "GATEWAY_DATA_DIR": "/var/lib/gw",
            "GATEWAY_PORT": "9000",
            "GATEWAY_WORKERS": "4",
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_MAX_BODY_BYTES": "2048",
            "GATEWAY_PUBLIC_URL": "https://offers.example.com/",
        }
    )
    assert s.port == 9000 and s.workers == 4 and s.log_format == "json"
    assert s.data_dir == Path("/var/lib/gw")
    assert s.base_url == "https://offers.example.com"
    assert s.database_url is not None
    assert s.database_url.reveal() == "postgresql://app:hunter2@db.internal:5432/gw"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_defaults_need_no_environment() -> None:
    s = Settings.from_env({})
    assert s.database_url is None
    # Per user, not per directory: the same from wherever a command runs.
    assert s.data_dir.is_absolute()
    assert s.data_dir == default_data_dir({})
    assert s.describe()["database_url"] == "(embedded)"
    # The settings log shows the URL clients are told, as the README documents it.
    assert s.describe()["public_url"] == "http://127.0.0.1:8080"
    assert Settings(port=9000).describe()["public_url"] == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_PORT": "0"}, "port"),
        ({"GATEWAY_PORT": "x"}, "GATEWAY_PORT"),
        ({"GATEWAY_WORKERS": "0"}, "workers"),
        ({"GATEWAY_LOG_FORMAT": "xml"}, "log format"),
        ({"GATEWAY_DB_POOL_MIN": "5", "GATEWAY_DB_POOL_MAX": "2"}, "pool"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_secrets_are_masked_in_reprs_and_descriptions() -> None:
    s = Settings(database_url=Secret("postgresql://app:hunter2@db/gw"))
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.describe())
    assert mask_url("postgresql://app:hunter2@db/gw") == "postgresql://app:***@db/gw"
    token = auth.mint(auth.Role.ADMIN)
    assert token.token not in repr(token)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_carry_request_ids_and_never_secrets(fmt: str) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("DEBUG", fmt)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    token = auth.mint(auth.Role.POS).token
    rid = logs.request_id.set("req-42")
    try:
        log = logging.getLogger("gateway.test")
        log.info("got header Authorization: Bearer %s", token)
        log.info("connecting", extra={"database": "postgresql://u:hunter2@h/db"})
        log.warning("raw token in text %s and ApplePass abcdefghijklmnop123", token)
    finally:
        logs.request_id.reset(rid)
        root.handlers[:], level = saved
        root.setLevel(level)
    out = stream.getvalue()
    assert out.count("req-42") == 3
    assert token not in out
    assert token.split("_", 3)[3] not in out  # the whole secret half
    assert "hunter2" not in out
    assert "abcdefghijklmnop123" not in out


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_access_lines_are_batched_in_order_and_scrubbed(fmt: str) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", fmt)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    token = auth.mint(auth.Role.SHOPPER).token
    try:
        assert logs.ACCESS.add("aiohttp.access", "POST", "/v1/pings", 200, 0.5, "r-1", "10.0.0.1")
        assert stream.getvalue() == ""  # queued, not yet written
        logging.getLogger("gateway.test").warning("later")  # the queue goes first
        logs.ACCESS.add("aiohttp.access", "GET", f"/v1/x/{token}", 404, 1.25, "r-2", "10.0.0.2")
        await asyncio.sleep(0.3)  # written within the delay
        out = stream.getvalue()
    finally:
        logs.ACCESS.flush()
        root.handlers[:], level = saved
        root.setLevel(level)
        logs.ACCESS.handler = None
    lines = out.splitlines()
    assert len(lines) == 3 and "later" in lines[1], out
    assert token not in out and token.split("_", 3)[3] not in out
    if fmt == "json":
        first, _, last = (json.loads(line) for line in lines)
        assert first["msg"] == "POST /v1/pings 200" and first["request_id"] == "r-1"
        assert first["level"] == "INFO" and first["logger"] == "aiohttp.access"
        assert last["ms"] == 1.25 and last["remote"] == "10.0.0.2"
    else:
        assert "INFO aiohttp.access [r-1] POST /v1/pings 200 ms=0.5 remote=10.0.0.1" in lines[0]
        assert "[r-2] GET /v1/x/gw_***" in lines[2]
