"""Each setting is declared once: the README's table, the environment, the CLI flags and
geo's config defaults all agree with the declarations."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway import cli, settings
from geo import models as geo_models

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_declared_table(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(settings.TABLE_HEADER)
    section = readme[start : readme.index("\n\n", start) + 1]
    assert section == settings.markdown_table()
    assert cli.main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == section


def test_every_field_is_declared_once_with_its_own_variable() -> None:
    fields = [f.name for f in dataclasses.fields(settings.Settings)]
    assert [d.name for d in settings.DECLARED] == fields
    envs = [d.env for d in settings.DECLARED]
    assert len(set(envs)) == len(envs)
    flags = [d.flag for d in settings.DECLARED if d.flag]
    assert len(set(flags)) == len(flags)
    assert all(d.meaning for d in settings.DECLARED)


@pytest.mark.parametrize(
    ("word", "value"),
    [
        *[(word, True) for word in ("1", "true", "Yes", "on")],
        *[(word, False) for word in ("0", "false", "NO", "off")],
    ],
)
def test_booleans_read_one_way_in_every_variable(word: str, value: bool) -> None:
    booleans = [d for d in settings.DECLARED if d.kind is bool]
    assert len(booleans) >= 4
    env = {d.env: word for d in booleans}
    s = settings.Settings.from_env(env)
    assert all(getattr(s, d.name) is value for d in booleans)


def test_a_boolean_that_is_no_word_is_refused() -> None:
    with pytest.raises(settings.SettingsError, match="GATEWAY_OUTBOX_WORKER must be one of"):
        settings.Settings.from_env({"GATEWAY_OUTBOX_WORKER": "2"})


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MIGRATE_ON_START", "0")
    monkeypatch.setenv("GATEWAY_PORT", "9000")
    parser = cli.build_parser()
    args = parser.parse_args(["--log-level", "debug", "serve", "--port", "9100", "--migrate"])
    cfg = cli.common.load_settings(args)
    assert (cfg.port, cfg.migrate_on_start, cfg.log_level) == (9100, True, "DEBUG")
    args = parser.parse_args(["worker", "--no-migrate"])
    assert cli.common.load_settings(args).port == 9000
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--port", "eighty"])


def test_geo_configs_and_settings_share_their_defaults() -> None:
    defaults = settings.Settings()
    assert defaults.fence_config() == geo_models.FenceConfig()
    assert defaults.spoofing_config() == geo_models.SpoofingConfig()
    tuned = settings.Settings(dwell_seconds=60, max_ping_age_seconds=600)
    assert tuned.fence_config().dwell_seconds == 60
    assert tuned.spoofing_config().max_age_s == 600


def test_serve_does_not_import_the_demo(tmp_path: Path) -> None:
    """`gateway serve` up to the point where aiohttp would start serving: no demo module."""
    script = textwrap.dedent(
        """
        import sys
        from aiohttp import web

        def run_app(app, **kwargs):
            print("run_app reached")

        web.run_app = run_app
        from gateway import cli
        assert cli.main(["serve", "--no-migrate"]) == 0
        loaded = sorted(m for m in sys.modules if m.startswith("gateway.demo"))
        assert not loaded, loaded
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "GATEWAY_DATA_DIR": str(tmp_path),
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "run_app reached" in done.stdout
