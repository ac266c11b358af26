"""The ``gateway`` command line: help everywhere, and the documented JSON outputs."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from gateway import cli
from tests.support import proc
from tests.support.tenants import Tenant

COMMANDS = [
    [],
    ["serve"],
    ["migrate"],
    ["merchants"],
    ["merchants", "create"],
    ["merchants", "list"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["origins"],
    ["origins", "add"],
    ["origins", "list"],
    ["origins", "remove"],
    ["pings"],
    ["pings", "purge"],
    ["db"],
    ["db", "url"],
    ["db", "stop"],
    ["worker"],
    ["outbox"],
    ["outbox", "dead"],
    ["wallet"],
    ["wallet", "dev-certs"],
    ["wallet", "upkeep"],
    ["wallet", "configure"],
    ["wallet", "google-configure"],
    ["wallet", "google-dev-account"],
    ["demo"],
    ["bench"],
    ["soak"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "gateway")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gateway")
    assert "--help" in out


def test_plain_gateway_lists_every_command_on_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    listed = {}
    for line in captured.out.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        name, help_ = line.split(maxsplit=1)
        listed[name] = help_
    names = {c[0] for c in COMMANDS if c} | {"settings"}
    assert set(listed) == names
    assert all(listed.values())
    assert captured.out.startswith("usage: gateway")


def test_every_subcommand_is_in_the_help_table() -> None:
    parser = cli.build_parser()
    text = parser.format_help()
    for name in ("serve", "migrate", "merchants", "keys", "db", "worker", "outbox"):
        assert name in text


async def test_merchants_and_keys_from_the_command_line(
    database_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    environ = proc.env(database_url, tmp_path)
    code, out, err = await proc.run(
        "merchants", "create", "--name", "Corner Coffee", environ=environ
    )
    assert code == 0, err
    merchant = json.loads(out)
    assert isinstance(merchant["id"], str)

    store_id = await conn.fetchval(
        "INSERT INTO stores (merchant_id, name, lat, lon, timezone) "
        "VALUES ($1, 'Main St', 51.5, -0.12, 'Europe/London') RETURNING id",
        int(merchant["id"]),
    )
    code, out, err = await proc.run(
        "keys",
        "create",
        "--role",
        "pos",
        "--merchant",
        merchant["id"],
        "--store",
        str(store_id),
        environ=environ,
    )
    assert code == 0, err
    key = json.loads(out)
    assert key["token"].startswith("gw_pos_")
    assert key["store_ids"] == [str(store_id)]
    # printed once, never logged
    assert key["token"] not in err
    public_id = key["token"].split("_")[2]
    row = await conn.fetchrow(
        "SELECT role, store_scoped FROM api_keys WHERE public_id = $1", public_id
    )
    assert row is not None and row["role"] == "pos" and row["store_scoped"]

    code, out, err = await proc.run("keys", "list", "--merchant", merchant["id"], environ=environ)
    assert code == 0, err
    listed = json.loads(out)
    assert [k["id"] for k in listed] == [key["id"]]
    assert key["token"] not in out

    code, out, err = await proc.run(
        "keys", "revoke", "--merchant", merchant["id"], key["id"], environ=environ
    )
    assert code == 0, err
    assert await conn.fetchval(
        "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1", int(key["id"])
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--role", "pos", "--merchant", "999999"], "no merchant"),
        (["keys", "create", "--role", "wizard", "--merchant", "1"], "invalid choice"),
        (["keys", "create", "--role", "pos", "--merchant", "abc"], "not an id"),
        (["keys", "create", "--role", "shopper", "--merchant", "1"], "invalid choice"),
        (["keys", "revoke", "--merchant", "1", "424242"], "has no key"),
        (["merchants", "create"], "--name"),
    ],
)
async def test_cli_errors_are_clear_and_non_zero(
    database_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = await proc.run(*args, environ=proc.env(database_url, tmp_path))
    assert code != 0
    assert message in err
    assert "Traceback" not in err


async def test_wallet_upkeep_expires_points_from_the_command_line(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path
) -> None:
    sid = tenant_a.shopper_id
    await conn.execute("UPDATE merchants SET points_expire_days = 30")
    await conn.execute(
        "WITH e AS (INSERT INTO points_ledger (merchant_id, shopper_id, kind, points, reason, "
        "created_at) VALUES ($1, $2, 'earn', 80, 'purchase', now() - interval '40 days')) "
        "UPDATE shoppers SET points = points + 80 WHERE id = $2",
        tenant_a.merchant_id,
        sid,
    )
    code, out, err = await proc.run("wallet", "upkeep", environ=proc.env(database_url, tmp_path))
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["shoppers_expired"], summary["points_expired"]) == (1, 80)
    assert "coupon passes expired: 0" in err  # progress on stderr
    assert await conn.fetchval("SELECT points FROM shoppers WHERE id = $1", sid) == 0


async def test_migrate_command_reports_what_it_applied(database_url: str, tmp_path: Path) -> None:
    code, out, err = await proc.run("migrate", environ=proc.env(database_url, tmp_path))
    assert code == 0, err
    assert json.loads(out)["applied"] == []  # the template is already migrated


async def test_bad_setting_is_a_usage_error(tmp_path: Path) -> None:
    environ = proc.env(None, tmp_path, GATEWAY_PORT="eighty")
    code, _, err = await proc.run("migrate", environ=environ)
    assert code == 2
    assert "GATEWAY_PORT must be an integer" in err


async def test_db_url_keeps_the_embedded_server_up_until_db_stop(tmp_path: Path) -> None:
    environ = proc.env(None, tmp_path)
    pid_file = tmp_path / "pg" / "postmaster.pid"
    code, out, err = await proc.run("db", "url", environ=environ)
    assert code == 0, err
    assert out.startswith("postgresql://")
    assert pid_file.exists()
    # another command using the server does not stop it on its way out
    code, _, err = await proc.run("merchants", "list", environ=environ)
    assert code == 0, err
    assert pid_file.exists()
    code, _, err = await proc.run("db", "stop", environ=environ)
    assert code == 0, err
    assert not pid_file.exists()


def test_wallet_dev_certs_are_labelled_and_usable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from wallet import passes

    assert cli.main(["wallet", "dev-certs", "--out", str(tmp_path / "certs")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "NOT VALID ON APPLE DEVICES" in out["warning"]
    d = tmp_path / "certs"
    signer = passes.Signer.from_pem(
        (d / "pass-certificate.pem").read_bytes(),
        (d / "pass-key.pem").read_bytes(),
        (d / "wwdr-dev-ca.pem").read_bytes(),
    )
    assert signer.sign(b"{}")
    assert (d / "pass-key.pem").stat().st_mode & 0o077 == 0


async def test_wallet_configure_stores_checked_certificates(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    environ = proc.env(database_url, tmp_path)
    certs = tmp_path / "certs"
    code, _, err = await proc.run("wallet", "dev-certs", "--out", str(certs), environ=environ)
    assert code == 0, err
    p8 = tmp_path / "AuthKey.p8"
    p8.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    base = [
        "wallet", "configure", "--merchant", str(tenant_a.merchant_id),
        "--pass-type-id", "pass.com.example.loyalty", "--team-id", "TEAM123456",
        "--organization", "Corner Coffee", "--cert", str(certs / "pass-certificate.pem"),
        "--wwdr", str(certs / "wwdr-dev-ca.pem"),
    ]  # fmt: skip
    # A key that is not the certificate's: refused, nothing stored.
    other = tmp_path / "other-key.pem"
    other.write_bytes(p8.read_bytes())
    code, _, err = await proc.run(*base, "--key", str(other), environ=environ)
    assert code != 0 and "unusable" in err and "Traceback" not in err
    assert await conn.fetchval("SELECT count(*) FROM wallet_configs") == 0

    code, out, err = await proc.run(
        *base,
        "--key",
        str(certs / "pass-key.pem"),
        "--apns-key",
        str(p8),
        "--apns-key-id",
        "KEY1234567",
        environ=environ,
    )
    assert code == 0, err
    assert json.loads(out)["apns"] == "token"
    row = await conn.fetchrow("SELECT pass_type_id, dev, apns_key_id FROM wallet_configs")
    assert (row["pass_type_id"], row["dev"], row["apns_key_id"]) == (
        "pass.com.example.loyalty",
        False,
        "KEY1234567",
    )


async def test_wallet_google_configure_checks_the_service_account_before_storing_it(
    database_url: str, conn: asyncpg.Connection, tenant_a: Tenant, tmp_path: Path
) -> None:
    environ = proc.env(database_url, tmp_path)
    sa = tmp_path / "sa.json"
    code, out, err = await proc.run(
        "wallet", "google-dev-account", "--out", str(sa), environ=environ
    )
    assert code == 0, err
    assert "NOT VALID AT GOOGLE" in json.loads(out)["warning"]
    assert sa.stat().st_mode & 0o077 == 0
    info = json.loads(sa.read_text())
    assert {"type", "client_email", "private_key_id", "private_key", "token_uri"} <= set(info)
    base = ["wallet", "google-configure", "--merchant", str(tenant_a.merchant_id)]
    # A file that is not a service account: refused with what is wrong, nothing stored.
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**info, "private_key": "not a key"}))
    code, out, err = await proc.run(
        *base, "--issuer-id", "3388000000022000001", "--service-account", str(broken),
        environ=environ,
    )  # fmt: skip
    assert code != 0 and "private_key is not an unencrypted PEM key" in err
    code, out, err = await proc.run(
        *base, "--issuer-id", "not-digits", "--service-account", str(sa), environ=environ
    )
    assert code != 0 and "--issuer-id" in err
    assert await conn.fetchval("SELECT count(*) FROM google_wallet_configs") == 0
    code, out, err = await proc.run(
        *base, "--issuer-id", "3388000000022000001", "--service-account", str(sa),
        "--program-name", "Alpha Rewards", environ=environ,
    )  # fmt: skip
    assert code == 0, err
    shown = json.loads(out)
    assert shown["client_email"] == info["client_email"] and "warning" in shown
    assert info["private_key"] not in out + err
    row = await conn.fetchrow("SELECT issuer_id, program_name, dev FROM google_wallet_configs")
    assert (row["issuer_id"], row["program_name"], row["dev"]) == (
        "3388000000022000001",
        "Alpha Rewards",
        True,
    )
