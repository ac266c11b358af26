"""Process settings: each one declared once, read from the environment and CLI flags.

Each field of :class:`Settings` declares one setting: its name, type and default are the
field's, and :func:`about` adds its environment variable, meaning and CLI flag. The
environment parser, the CLI flags and their help, and the README's configuration table
(:func:`markdown_table`) all come from these declarations. Secrets are wrapped in
:class:`gateway.secret.Secret` so that a settings object can be logged or printed without
leaking them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from gateway.datadir import default_data_dir
from gateway.declare import Declared as Declared  # the CLI builds its flags from these
from gateway.declare import SettingsError as SettingsError
from gateway.declare import about
from gateway.secret import Secret, mask_url
from geo import models as geo_models

# How answered pings are kept until their batch is written (gateway/pingpath/pinglog.py).
PingLogMode = Literal["spool", "sync", "memory"]
PING_LOG_MODES: tuple[PingLogMode, ...] = ("spool", "sync", "memory")
LogFormat = Literal["text", "json"]


def _geo(config: type[Any], name: str) -> Any:
    """A default that geo's own config class declares (geo cannot import the gateway)."""
    (found,) = (f.default for f in dataclasses.fields(config) if f.name == name)
    return found


# Settings that are tunings of geo's configs: the setting's name, and the config field.
FENCE_FIELDS = {"dwell_seconds": "dwell_seconds", "max_accuracy_m": "max_accuracy_m"}
SPOOFING_FIELDS = {"max_speed_mps": "max_speed_mps", "max_ping_age_seconds": "max_age_s"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a gateway process needs to know at start-up.

    Each field is read from its environment variable; CLI flags override some of them.
    The README's configuration table is :func:`markdown_table` of these declarations.
    """

    database_url: Secret | None = field(
        default=None, metadata=about("DATABASE_URL", "PostgreSQL URL", shown="unset: embedded")
    )
    database_direct_url: Secret | None = field(
        default=None,
        metadata=about(
            "GATEWAY_DATABASE_DIRECT_URL",
            "a URL straight to PostgreSQL for what needs a session of its own (LISTEN, the "
            "ping log and its spool marks, the periodic jobs' and migrations' advisory "
            "locks). Set it when `DATABASE_URL` goes through PgBouncer in transaction mode: "
            "the request pools then keep no prepared statements (deploy/SCALING.md)",
            shown="unset: `DATABASE_URL`, no pooler",
        ),
    )
    data_dir: Path = field(
        default_factory=default_data_dir,
        metadata=about(
            "GATEWAY_DATA_DIR",
            "embedded database (`pg/`), ping spool and generated keys; the same for every "
            "command whatever the current directory",
            flag="--data-dir",
            shown="`$XDG_DATA_HOME/gateway`, else `~/.local/share/gateway` (macOS: "
            "`~/Library/Application Support/gateway`, Windows: `%LOCALAPPDATA%\\gateway`)",
        ),
    )
    host: str = field(
        default="127.0.0.1", metadata=about("GATEWAY_HOST", "address to bind", flag="--host")
    )
    port: int = field(default=8080, metadata=about("GATEWAY_PORT", "port to bind", flag="--port"))
    workers: int = field(
        default=1, metadata=about("GATEWAY_WORKERS", "processes sharing the port", flag="--workers")
    )
    log_level: str = field(
        default="INFO",
        metadata=about(
            "GATEWAY_LOG_LEVEL",
            "DEBUG, INFO, WARNING...",
            flag="--log-level",
            clean=str.upper,
        ),
    )
    log_format: LogFormat = field(
        default="text",
        metadata=about(
            "GATEWAY_LOG_FORMAT",
            "log line format: `text`, or `json` for one JSON object per line",
            flag="--log-format",
        ),
    )
    metrics: bool = field(
        default=True,
        metadata=about(
            "GATEWAY_METRICS",
            "collect Prometheus metrics and serve them at `GET /metrics` (no API token); `0` "
            "collects none and `/metrics` answers 404",
        ),
    )
    metrics_port: int | None = field(
        default=None,
        metadata=about(
            "GATEWAY_METRICS_PORT",
            "serve `/metrics` on this port of `GATEWAY_HOST` instead of the main port (which "
            "then answers 404 there)",
            shown="unset: the main port",
        ),
    )
    metrics_allow: str = field(
        default="",
        metadata=about(
            "GATEWAY_METRICS_ALLOW",
            "comma-separated addresses or CIDR blocks allowed to read `/metrics` (the peer's "
            "address: a proxy in front is the peer); others get 403",
            shown="unset: any address",
        ),
    )
    metrics_token: Secret | None = field(
        default=None,
        metadata=about(
            "GATEWAY_METRICS_TOKEN",
            "if set, `/metrics` needs `Authorization: Bearer <this>` (401 without it)",
            shown="unset: no token",
        ),
    )
    max_body_bytes: int = field(
        default=1024 * 1024,
        metadata=about("GATEWAY_MAX_BODY_BYTES", "larger request bodies get 413"),
    )
    db_pool_min: int = field(
        default=2, metadata=about("GATEWAY_DB_POOL_MIN", "fewest connections per process")
    )
    db_pool_max: int = field(
        default=10, metadata=about("GATEWAY_DB_POOL_MAX", "most connections per process")
    )
    token_cache_seconds: float = field(
        default=300.0,
        metadata=about(
            "GATEWAY_TOKEN_CACHE_SECONDS",
            "longest a verified token is trusted without a database read; revocations and "
            "deletions reach every replica at once by LISTEN/NOTIFY, and the cache is dropped "
            "if that channel is lost",
        ),
    )
    public_url: str = field(
        default="",
        metadata=about(
            "GATEWAY_PUBLIC_URL",
            "the base URL clients use",
            shown="`http://HOST:PORT`",
            clean=lambda url: url.rstrip("/"),
        ),
    )
    migrate_on_start: bool = field(
        default=True,
        metadata=about(
            "GATEWAY_MIGRATE_ON_START",
            "apply pending migrations when `serve` or `worker` starts; off leaves them to "
            "`gateway migrate`",
            flag="--migrate",
        ),
    )
    max_import_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=about("GATEWAY_MAX_IMPORT_BYTES", "body limit of the bulk geofence import"),
    )
    max_fence_distance_m: float = field(
        default=50_000.0,
        metadata=about(
            "GATEWAY_MAX_FENCE_DISTANCE_M",
            "a geofence whose nearest point is farther than this from its store is refused "
            "(422 `fence_too_far`, with a hint when swapped longitude and latitude would fit), "
            "and so is a store move that would leave one that far; 0 turns the check off",
        ),
    )
    dwell_seconds: float = field(
        default=_geo(geo_models.FenceConfig, "dwell_seconds"),
        metadata=about(
            "GATEWAY_DWELL_SECONDS",
            "time inside a geofence before `dwell`",
        ),
    )
    max_accuracy_m: float = field(
        default=_geo(geo_models.FenceConfig, "max_accuracy_m"),
        metadata=about(
            "GATEWAY_MAX_ACCURACY_M",
            "pings less accurate than this are recorded but trigger nothing",
        ),
    )
    max_speed_mps: float = field(
        default=_geo(geo_models.SpoofingConfig, "max_speed_mps"),
        metadata=about(
            "GATEWAY_MAX_SPEED_MPS",
            "faster implied travel between pings is flagged as impossible",
        ),
    )
    max_ping_age_seconds: float = field(
        default=_geo(geo_models.SpoofingConfig, "max_age_s"),
        metadata=about(
            "GATEWAY_MAX_PING_AGE_SECONDS",
            "older pings are refused (422); the future is refused beyond "
            f"{_geo(geo_models.SpoofingConfig, 'max_future_skew_s'):g} s of clock skew",
        ),
    )
    ping_rate: float = field(
        default=2.0,
        metadata=about("GATEWAY_PING_RATE", "per-shopper ping requests per second, per process"),
    )
    ping_burst: int = field(
        default=20, metadata=about("GATEWAY_PING_BURST", "per-shopper ping burst, per process")
    )
    ping_retention_days: float = field(
        default=30.0,
        metadata=about("GATEWAY_PING_RETENTION_DAYS", "raw pings are deleted after this"),
    )
    ping_log: PingLogMode = field(
        default="spool",
        metadata=about(
            "GATEWAY_PING_LOG",
            "how answered pings are kept safe until their batch is written. `spool`: each "
            "ping's record is appended to a local file under `GATEWAY_DATA_DIR/spool/` (a "
            "directory per database) before the answer; a process that dies (even `kill -9`) "
            "leaves its file, and the next process on that directory replays what the database "
            "lacks, exactly once. `sync`: the answer waits until the row is committed (group "
            "commit; no local file, more latency). `memory`: nothing local; a crash loses up to "
            "one flush interval of pings",
        ),
    )
    ping_log_flush_seconds: float = field(
        default=0.2,
        metadata=about(
            "GATEWAY_PING_LOG_FLUSH_SECONDS",
            "how often spooled or buffered pings are written, in one statement per batch",
        ),
    )
    index_poll_seconds: float = field(
        default=5.0,
        metadata=about(
            "GATEWAY_INDEX_POLL_SECONDS",
            "fallback check of the geofence change counter (LISTEN/NOTIFY is the fast path)",
        ),
    )
    match_kernel: geo_models.MatchKernel = field(
        default="auto",
        metadata=about(
            "GATEWAY_MATCH_KERNEL",
            "how one ping's nearby geofences are measured: `numba` (compiled when the index "
            "is first built), `numpy`, or `auto` (numba if it can be imported); same answers",
        ),
    )
    offer_max_delay_seconds: float = field(
        default=300.0,
        metadata=about(
            "GATEWAY_OFFER_MAX_DELAY_SECONDS",
            "a trigger from a ping older than this (buffered offline) decides no offer: the "
            "moment has passed",
        ),
    )
    void_window_minutes: int = field(
        default=30,
        metadata=about(
            "GATEWAY_VOID_WINDOW_MINUTES", "how long after a redemption it can be voided"
        ),
    )
    redeem_rate: float = field(
        default=5.0,
        metadata=about(
            "GATEWAY_REDEEM_RATE",
            "redemption attempts per POS key per second, per process (failures count, so "
            "codes cannot be brute-forced)",
        ),
    )
    redeem_burst: int = field(
        default=30,
        metadata=about(
            "GATEWAY_REDEEM_BURST", "redemption attempts per POS key in a burst, per process"
        ),
    )
    stats_compact_seconds: float = field(
        default=10.0,
        metadata=about(
            "GATEWAY_STATS_COMPACT_SECONDS",
            "how often funnel rollup deltas are folded into the rollups",
        ),
    )
    survey_invite_seconds: float = field(
        default=15.0,
        metadata=about(
            "GATEWAY_SURVEY_INVITE_SECONDS",
            "how often the survey invitations that came due are decided and sent",
        ),
    )
    vapid_private_key: Secret | None = field(
        default=None,
        metadata=about(
            "GATEWAY_VAPID_PRIVATE_KEY",
            "PEM of the VAPID signing key",
            shown="unset: made on first run, kept in the database",
        ),
    )
    vapid_subject: str = field(
        default="mailto:operator@example.invalid",
        metadata=about(
            "GATEWAY_VAPID_SUBJECT",
            "the VAPID `sub` claim: a contact for push services (a mailto: or https: URL)",
        ),
    )
    webpush_allow_http: bool = field(
        default=False,
        metadata=about(
            "GATEWAY_WEBPUSH_ALLOW_HTTP",
            "`1` accepts `http://` push endpoints (a local push service)",
        ),
    )
    outbox_worker: bool = field(
        default=True,
        metadata=about(
            "GATEWAY_OUTBOX_WORKER", "`0`: `serve` runs no delivery worker in this process"
        ),
    )
    outbox_lease_seconds: float = field(
        default=30.0,
        metadata=about(
            "GATEWAY_OUTBOX_LEASE_SECONDS",
            "how long a claimed outbox row is held before another worker may take it",
        ),
    )
    pass_pusher: bool = field(
        default=True,
        metadata=about(
            "GATEWAY_PASS_PUSHER",
            "`0`: this process sends no wallet pass updates (APNs pushes, Google object updates)",
        ),
    )
    apns_url: str = field(
        default="https://api.push.apple.com",
        metadata=about("GATEWAY_APNS_URL", "where pass updates go"),
    )
    apns_ca_file: str | None = field(
        default=None,
        metadata=about(
            "GATEWAY_APNS_CA_FILE",
            "a CA file to trust for APNs (a local stand-in)",
            shown="unset",
        ),
    )
    pass_cache_mb: int = field(
        default=64,
        metadata=about(
            "GATEWAY_PASS_CACHE_MB",
            "memory for signed passes kept by version in each process (MB); every build is "
            "also kept in the database",
        ),
    )
    google_wallet_url: str = field(
        default="https://walletobjects.googleapis.com/walletobjects/v1",
        metadata=about("GATEWAY_GOOGLE_WALLET_URL", "the Google Wallet REST API's base URL"),
    )
    google_token_uri: str | None = field(
        default=None,
        metadata=about(
            "GATEWAY_GOOGLE_TOKEN_URI",
            "where Google OAuth tokens are asked for; unset: the service account's `token_uri`",
            shown="unset",
        ),
    )
    google_root_keys_url: str = field(
        default="https://pay.google.com/gp/m/issuer/keys",
        metadata=about(
            "GATEWAY_GOOGLE_ROOT_KEYS_URL",
            "where Google's root signing keys for Google Wallet callbacks are fetched (cached "
            "for the answer's max-age, fetched again when a callback's key is not among them)",
        ),
    )
    google_root_keys: str | None = field(
        default=None,
        metadata=about(
            "GATEWAY_GOOGLE_ROOT_KEYS",
            'a fixed list of those root keys, as Google\'s JSON (`{"keys": [...]}`) or the '
            "path of a file holding it, used instead of the URL (tests, offline set-ups)",
            shown="unset: fetched",
        ),
    )
    wallet_upkeep_seconds: float = field(
        default=3600.0,
        metadata=about(
            "GATEWAY_WALLET_UPKEEP_SECONDS",
            "how often points expire, tiers are recomputed and expired coupon passes are refreshed",
        ),
    )
    journeys_seconds: float = field(
        default=60.0,
        metadata=about(
            "GATEWAY_JOURNEYS_SECONDS",
            "how often lifecycle journeys find due shoppers and send their offers",
        ),
    )
    map_tiles: str = field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        metadata=about(
            "GATEWAY_MAP_TILES",
            "the console map's tile URL template (`{z}`, `{x}`, `{y}`; `{s}` as the first host "
            "label); its host is allowed in the console's Content-Security-Policy. Without "
            "tiles the map still shows a grid, the stores and the fences",
        ),
    )
    map_attribution: str = field(
        default="© OpenStreetMap contributors",
        metadata=about("GATEWAY_MAP_ATTRIBUTION", "the credit shown on the console map's tiles"),
    )

    def __post_init__(self) -> None:
        _check(self)

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
            elif f.name == "database_direct_url":
                value = mask_url(value.reveal()) if value else "(DATABASE_URL)"
            elif f.name == "public_url":
                value = self.base_url  # what clients are told, also when it is the default
            elif isinstance(value, Path | Secret):
                value = str(value)
            out[f.name] = value
        return out

    def fence_config(self) -> geo_models.FenceConfig:
        """geo's enter/dwell/exit tuning, with the values these settings override."""
        return geo_models.FenceConfig(
            **{geo: getattr(self, name) for name, geo in FENCE_FIELDS.items()}
        )

    def spoofing_config(self) -> geo_models.SpoofingConfig:
        """geo's spoofing limits, with the values these settings override."""
        return geo_models.SpoofingConfig(
            **{geo: getattr(self, name) for name, geo in SPOOFING_FIELDS.items()}
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of the environment; an unset or empty variable means the default."""
        env = os.environ if environ is None else environ
        values = {d.name: d.parse(env[d.env]) for d in DECLARED if env.get(d.env)}
        values.setdefault("data_dir", default_data_dir(env))
        return cls(**values)


def _check(s: Settings) -> None:
    """Refuse values no process could run with, naming the setting."""
    if not 0 < s.port < 65536:
        raise SettingsError(f"port must be 1-65535, got {s.port}")
    if s.workers < 1:
        raise SettingsError(f"workers must be >= 1, got {s.workers}")
    if s.log_format not in ("text", "json"):
        raise SettingsError(f"log format must be 'text' or 'json', got {s.log_format!r}")
    if s.metrics_port is not None and not 0 < s.metrics_port < 65536:
        raise SettingsError(f"GATEWAY_METRICS_PORT must be 1-65535, got {s.metrics_port}")
    if s.metrics_port == s.port:
        raise SettingsError("GATEWAY_METRICS_PORT must differ from GATEWAY_PORT")
    allowed_networks(s.metrics_allow)  # refuses what is no address or CIDR block
    if s.max_body_bytes < 1024:
        raise SettingsError("max body bytes must be at least 1024")
    if not 1 <= s.db_pool_min <= s.db_pool_max:
        raise SettingsError("need 1 <= db pool min <= db pool max")
    if s.max_import_bytes < s.max_body_bytes:
        raise SettingsError("max import bytes must be at least max body bytes")
    if not s.max_fence_distance_m >= 0:
        raise SettingsError("GATEWAY_MAX_FENCE_DISTANCE_M must be 0 (off) or more")
    if s.ping_rate <= 0 or s.ping_burst < 1:
        raise SettingsError("ping rate must be > 0 and ping burst >= 1")
    if s.ping_log not in PING_LOG_MODES:
        raise SettingsError(
            f"GATEWAY_PING_LOG must be one of {', '.join(PING_LOG_MODES)}, not {s.ping_log!r}"
        )
    if s.match_kernel not in geo_models.MATCH_KERNELS:
        raise SettingsError(
            f"GATEWAY_MATCH_KERNEL must be auto, numba or numpy, not {s.match_kernel!r}"
        )
    if not 0 < s.ping_log_flush_seconds <= 3600:
        raise SettingsError("GATEWAY_PING_LOG_FLUSH_SECONDS must be in (0, 3600]")
    if s.ping_retention_days <= 0:
        raise SettingsError("ping retention must be positive")
    if s.offer_max_delay_seconds < 0 or s.void_window_minutes < 0:
        raise SettingsError("offer max delay and void window must not be negative")
    if s.redeem_rate <= 0 or s.redeem_burst < 1:
        raise SettingsError("redeem rate must be > 0 and redeem burst >= 1")
    if s.outbox_lease_seconds <= 0:
        raise SettingsError("the outbox lease must be positive")
    if not s.vapid_subject.startswith(("mailto:", "https:")):
        raise SettingsError("the VAPID subject must be a mailto: or https: URL")
    if s.wallet_upkeep_seconds <= 0:
        raise SettingsError("the wallet upkeep interval must be positive")
    if s.journeys_seconds <= 0:
        raise SettingsError("the journeys interval must be positive")
    if s.stats_compact_seconds <= 0:
        raise SettingsError("stats compaction interval must be positive")
    if s.survey_invite_seconds <= 0:
        raise SettingsError("the survey invitation interval must be positive")
    if tile_origin(s.map_tiles) is None:
        raise SettingsError(
            "GATEWAY_MAP_TILES must be an http(s) URL template whose host has no placeholder "
            f"but in its first label, got {s.map_tiles!r}"
        )


def allowed_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of GATEWAY_METRICS_ALLOW (a single address is a /32 or /128)."""
    try:
        return tuple(ipaddress.ip_network(p.strip()) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise SettingsError(f"GATEWAY_METRICS_ALLOW: {exc}") from None


_TILE_URL = re.compile(
    r"^(?P<scheme>https?)://(?P<host>[\w.{}-]+)(?P<port>:\d+)?(?:[/?#]\S*)?$", re.ASCII
)


def tile_origin(template: str) -> str | None:
    """The CSP source that allows a tile URL template's images, or None if it has none.

    `{s}` (rotating subdomains) may be the host's first label: it becomes `*`.
    """
    match = _TILE_URL.match(template)
    if match is None:
        return None
    first, dot, rest = match["host"].partition(".")
    if "{" in rest or "}" in rest:
        return None
    if "{" in first or "}" in first:
        if not dot:
            return None
        first = "*"
    return f"{match['scheme']}://{first}{dot}{rest}{match['port'] or ''}"


def _declare() -> tuple[Declared, ...]:
    hints = typing.get_type_hints(Settings)
    return tuple(
        Declared(
            name=f.name,
            kind=hints[f.name],
            # A computed default (the data directory) as this environment computes it.
            default=f.default if f.default_factory is dataclasses.MISSING else f.default_factory(),
            **f.metadata["setting"],
        )
        for f in dataclasses.fields(Settings)
    )


DECLARED: tuple[Declared, ...] = _declare()
"""Every setting, in the order of the README's table."""
BY_NAME: Mapping[str, Declared] = {d.name: d for d in DECLARED}

TABLE_HEADER = "| variable | default | meaning |\n|---|---|---|\n"


def markdown_table() -> str:
    """The README's configuration table, one row per setting."""
    rows = (f"| `{d.env}` | {d.default_cell()} | {d.meaning} |\n" for d in DECLARED)
    return TABLE_HEADER + "".join(rows)


SETTINGS = web.AppKey("settings", Settings)
