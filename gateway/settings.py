"""Process settings: one frozen object built from the environment and CLI flags.

Secrets are wrapped in :class:`Secret` so that a settings object can be logged
or printed without leaking them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from aiohttp import web

_URL_PASSWORD = re.compile(r"(?P<prefix>://[^:/@]*:)(?P<password>[^@]*)@")


class Secret:
    """A string that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def mask_url(url: str) -> str:
    """A database URL with its password replaced, fit for logs."""
    return _URL_PASSWORD.sub(r"\g<prefix>***@", url)


# How answered pings are kept until their batch is written (gateway/pinglog.py).
PingLogMode = Literal["spool", "sync", "memory"]
PING_LOG_MODES: tuple[PingLogMode, ...] = ("spool", "sync", "memory")


class SettingsError(ValueError):
    """An environment variable or flag has a value we cannot use."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a gateway process needs to know at start-up.

    Environment variables (flags on the CLI override them):

    ``DATABASE_URL``                 PostgreSQL URL; unset means the embedded server
    ``GATEWAY_DATA_DIR``             embedded server and generated keys (``./.gateway``)
    ``GATEWAY_HOST`` / ``GATEWAY_PORT`` / ``GATEWAY_WORKERS``
    ``GATEWAY_LOG_LEVEL`` / ``GATEWAY_LOG_FORMAT`` (``text`` or ``json``)
    ``GATEWAY_MAX_BODY_BYTES``       largest accepted request body (1 MiB)
    ``GATEWAY_DB_POOL_MIN`` / ``GATEWAY_DB_POOL_MAX``
    ``GATEWAY_TOKEN_CACHE_SECONDS``  longest a verified token is trusted without a DB read (300);
                                     revocations reach every replica at once by NOTIFY
    ``GATEWAY_PUBLIC_URL``           the base URL clients reach us at
    ``GATEWAY_MIGRATE_ON_START``     ``1`` (default) to migrate when ``serve`` starts
    ``GATEWAY_MAX_IMPORT_BYTES``     largest bulk geofence import (64 MiB)
    ``GATEWAY_DWELL_SECONDS``        time inside a geofence before ``dwell`` fires (300)
    ``GATEWAY_MAX_ACCURACY_M``       pings less accurate than this trigger nothing (150)
    ``GATEWAY_MAX_SPEED_MPS``        faster implied travel is flagged as impossible (70)
    ``GATEWAY_MAX_PING_AGE_SECONDS`` older pings are refused (86400)
    ``GATEWAY_PING_RATE`` / ``GATEWAY_PING_BURST``  per-shopper ping requests/s and burst (2, 20)
    ``GATEWAY_PING_RETENTION_DAYS``  raw pings are purged after this many days (30)
    ``GATEWAY_PING_LOG``             ``spool`` (default): a local spool file before the
                                     answer, replayed after a crash; ``sync``: answer once
                                     the row is committed; ``memory``: may lose 200 ms
    ``GATEWAY_PING_LOG_FLUSH_SECONDS``  how often spooled or buffered pings are written (0.2)
    ``GATEWAY_OFFER_MAX_DELAY_SECONDS``  triggers from pings older than this decide no
                                     offer (300): the moment has passed
    ``GATEWAY_REDEEM_RATE`` / ``GATEWAY_REDEEM_BURST``  redemption attempts per POS key
                                     per second and burst, per process (5, 30)
    ``GATEWAY_VOID_WINDOW_MINUTES``  how long after a redemption it can be voided (30)
    ``GATEWAY_VAPID_PRIVATE_KEY``    PEM of the VAPID key; unset: made on first run, kept in the DB
    ``GATEWAY_VAPID_SUBJECT``        the VAPID ``sub`` claim, a mailto: or https: contact
    ``GATEWAY_WEBPUSH_ALLOW_HTTP``   ``1`` accepts http:// push endpoints (local push services)
    ``GATEWAY_OUTBOX_WORKER``        ``1`` (default) runs a delivery worker in each process
    ``GATEWAY_OUTBOX_LEASE_SECONDS`` how long a claimed outbox row is held (30)
    ``GATEWAY_PASS_PUSHER``          ``1`` (default) sends APNs pass updates from each process
    ``GATEWAY_APNS_URL``             APNs base URL (https://api.push.apple.com)
    ``GATEWAY_APNS_CA_FILE``         a CA file to trust for APNs (a local stand-in)
    ``GATEWAY_WALLET_UPKEEP_SECONDS`` how often points expire and tiers are recomputed (3600)
    ``GATEWAY_STATS_COMPACT_SECONDS``  how often funnel rollup deltas are folded in (10)
    """

    database_url: Secret | None = None
    data_dir: Path = Path(".gateway")
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "INFO"
    log_format: str = "text"
    max_body_bytes: int = 1024 * 1024
    db_pool_min: int = 2
    db_pool_max: int = 10
    token_cache_seconds: float = 300.0
    public_url: str = ""
    migrate_on_start: bool = True
    max_import_bytes: int = 64 * 1024 * 1024
    dwell_seconds: float = 300.0
    max_accuracy_m: float = 150.0
    max_speed_mps: float = 70.0
    max_ping_age_seconds: float = 86400.0
    ping_rate: float = 2.0
    ping_burst: int = 20
    ping_retention_days: float = 30.0
    ping_log: PingLogMode = "spool"
    ping_log_flush_seconds: float = 0.2
    index_poll_seconds: float = 5.0
    offer_max_delay_seconds: float = 300.0
    void_window_minutes: int = 30
    redeem_rate: float = 5.0
    redeem_burst: int = 30
    stats_compact_seconds: float = 10.0
    vapid_private_key: Secret | None = None
    vapid_subject: str = "mailto:operator@example.invalid"
    webpush_allow_http: bool = False
    outbox_worker: bool = True
    outbox_lease_seconds: float = 30.0
    pass_pusher: bool = True
    apns_url: str = "https://api.push.apple.com"
    apns_ca_file: str | None = None
    wallet_upkeep_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be 1-65535, got {self.port}")
        if self.workers < 1:
            raise SettingsError(f"workers must be >= 1, got {self.workers}")
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"log format must be 'text' or 'json', got {self.log_format!r}")
        if self.max_body_bytes < 1024:
            raise SettingsError("max body bytes must be at least 1024")
        if not 1 <= self.db_pool_min <= self.db_pool_max:
            raise SettingsError("need 1 <= db pool min <= db pool max")
        if self.max_import_bytes < self.max_body_bytes:
            raise SettingsError("max import bytes must be at least max body bytes")
        if self.ping_rate <= 0 or self.ping_burst < 1:
            raise SettingsError("ping rate must be > 0 and ping burst >= 1")
        if self.ping_log not in PING_LOG_MODES:
            raise SettingsError(
                f"GATEWAY_PING_LOG must be one of {', '.join(PING_LOG_MODES)}, "
                f"not {self.ping_log!r}"
            )
        if not 0 < self.ping_log_flush_seconds <= 3600:
            raise SettingsError("GATEWAY_PING_LOG_FLUSH_SECONDS must be in (0, 3600]")
        if self.ping_retention_days <= 0:
            raise SettingsError("ping retention must be positive")
        if self.offer_max_delay_seconds < 0 or self.void_window_minutes < 0:
            raise SettingsError("offer max delay and void window must not be negative")
        if self.redeem_rate <= 0 or self.redeem_burst < 1:
            raise SettingsError("redeem rate must be > 0 and redeem burst >= 1")
        if self.outbox_lease_seconds <= 0:
            raise SettingsError("the outbox lease must be positive")
        if not self.vapid_subject.startswith(("mailto:", "https:")):
            raise SettingsError("the VAPID subject must be a mailto: or https: URL")
        if self.wallet_upkeep_seconds <= 0:
            raise SettingsError("the wallet upkeep interval must be positive")
        if self.stats_compact_seconds <= 0:
            raise SettingsError("stats compaction interval must be positive")

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; ``None`` values are ignored (unset flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> dict[str, Any]:
        """The settings as loggable data, with secrets masked."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "database_url":
                value = mask_url(value.reveal()) if value else "(embedded)"
            elif isinstance(value, Path | Secret):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        def get_int(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from None

        def get_float(name: str, default: float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                return float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None

        db = get("DATABASE_URL")
        return cls(
            database_url=Secret(db) if db else None,
            data_dir=Path(get("GATEWAY_DATA_DIR") or ".gateway"),
            host=get("GATEWAY_HOST") or "127.0.0.1",
            port=get_int("GATEWAY_PORT", 8080),
            workers=get_int("GATEWAY_WORKERS", 1),
            log_level=(get("GATEWAY_LOG_LEVEL") or "INFO").upper(),
            log_format=get("GATEWAY_LOG_FORMAT") or "text",
            max_body_bytes=get_int("GATEWAY_MAX_BODY_BYTES", 1024 * 1024),
            db_pool_min=get_int("GATEWAY_DB_POOL_MIN", 2),
            db_pool_max=get_int("GATEWAY_DB_POOL_MAX", 10),
            token_cache_seconds=get_float("GATEWAY_TOKEN_CACHE_SECONDS", 300.0),
            public_url=(get("GATEWAY_PUBLIC_URL") or "").rstrip("/"),
            migrate_on_start=(get("GATEWAY_MIGRATE_ON_START") or "1") not in ("0", "false", "no"),
            max_import_bytes=get_int("GATEWAY_MAX_IMPORT_BYTES", 64 * 1024 * 1024),
            dwell_seconds=get_float("GATEWAY_DWELL_SECONDS", 300.0),
            max_accuracy_m=get_float("GATEWAY_MAX_ACCURACY_M", 150.0),
            max_speed_mps=get_float("GATEWAY_MAX_SPEED_MPS", 70.0),
            max_ping_age_seconds=get_float("GATEWAY_MAX_PING_AGE_SECONDS", 86400.0),
            ping_rate=get_float("GATEWAY_PING_RATE", 2.0),
            ping_burst=get_int("GATEWAY_PING_BURST", 20),
            ping_retention_days=get_float("GATEWAY_PING_RETENTION_DAYS", 30.0),
            # Checked in __post_init__, like every other value.
            ping_log=cast(PingLogMode, env.get("GATEWAY_PING_LOG", "spool")),
            ping_log_flush_seconds=get_float("GATEWAY_PING_LOG_FLUSH_SECONDS", 0.2),
            index_poll_seconds=get_float("GATEWAY_INDEX_POLL_SECONDS", 5.0),
            offer_max_delay_seconds=get_float("GATEWAY_OFFER_MAX_DELAY_SECONDS", 300.0),
            void_window_minutes=get_int("GATEWAY_VOID_WINDOW_MINUTES", 30),
            redeem_rate=get_float("GATEWAY_REDEEM_RATE", 5.0),
            redeem_burst=get_int("GATEWAY_REDEEM_BURST", 30),
            stats_compact_seconds=get_float("GATEWAY_STATS_COMPACT_SECONDS", 10.0),
            vapid_private_key=Secret(env["GATEWAY_VAPID_PRIVATE_KEY"])
            if env.get("GATEWAY_VAPID_PRIVATE_KEY")
            else None,
            vapid_subject=env.get("GATEWAY_VAPID_SUBJECT", "mailto:operator@example.invalid"),
            webpush_allow_http=env.get("GATEWAY_WEBPUSH_ALLOW_HTTP", "0") == "1",
            outbox_worker=env.get("GATEWAY_OUTBOX_WORKER", "1") != "0",
            outbox_lease_seconds=get_float("GATEWAY_OUTBOX_LEASE_SECONDS", 30.0),
            pass_pusher=env.get("GATEWAY_PASS_PUSHER", "1") != "0",
            apns_url=env.get("GATEWAY_APNS_URL") or "https://api.push.apple.com",
            apns_ca_file=env.get("GATEWAY_APNS_CA_FILE") or None,
            wallet_upkeep_seconds=get_float("GATEWAY_WALLET_UPKEEP_SECONDS", 3600.0),
        )


SETTINGS = web.AppKey("settings", Settings)
