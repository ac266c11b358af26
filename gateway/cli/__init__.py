"""The ``gateway`` command: serve, migrate, and manage merchants and API keys.

Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import gc
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import abc, web

from gateway import clock, db, logs, migrate, settings
from gateway.accounts import auth, tenancy
from gateway.http import api, errors
from gateway.jobs import retention, upkeep

log = logging.getLogger("gateway")


class AccessLogger(abc.AbstractAccessLogger):
    """One line per request, carrying the request id the response was given."""

    @property
    def enabled(self) -> bool:
        # aiohttp skips log() entirely when this is False: no cost at WARNING level.
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "ms": round(time * 1000, 2),
                "rid": response.headers.get("X-Request-Id", "-"),
                "remote": request.remote,
            },
        )


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def _settings(args: argparse.Namespace) -> settings.Settings:
    base = settings.Settings.from_env()
    return base.replace(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        log_level=args.log_level.upper() if args.log_level else None,
        log_format=args.log_format,
        migrate_on_start=False if getattr(args, "no_migrate", False) else None,
    )


async def _with_db(
    cfg: settings.Settings, work: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> Any:
    """Run one piece of CLI work on a migrated database."""
    url = db.resolve_url(cfg)
    conn = await db.connect(url)
    try:
        await migrate.migrate(conn)
        return await work(conn)
    finally:
        await conn.close()


# --- serve -------------------------------------------------------------------


def _serve_one(cfg: settings.Settings, url: str, reuse_port: bool) -> None:
    from gateway.app import create_app

    if reuse_port:  # a spawned worker: set up its own logging
        logs.configure(cfg.log_level, cfg.log_format)
    app = create_app(cfg, db_url=url)
    app.on_startup.append(_freeze_heap)
    web.run_app(
        app,
        host=cfg.host,
        port=cfg.port,
        reuse_port=reuse_port or None,
        access_log_class=AccessLogger,
        print=None,
        shutdown_timeout=10,
        loop=_new_loop(),
    )


async def _freeze_heap(app: web.Application) -> None:
    """Run last at start: what start built lives as long as the process.

    The geofence index, the caches and the imported modules are hundreds of thousands of
    objects that the cyclic collector would otherwise walk again and again; frozen, its
    collections only walk what requests allocate.
    """
    gc.collect()
    gc.freeze()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it roughly halves the per-request cost), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    url = db.resolve_url(cfg)
    log.info("starting", extra={"settings": cfg.describe()})
    if cfg.migrate_on_start:
        asyncio.run(_migrate(url))
    sys.stderr.write(
        f"gateway listening on http://{cfg.host}:{cfg.port} ({cfg.workers} worker(s))\n"
    )
    if cfg.workers == 1:
        _serve_one(cfg, url, reuse_port=False)
        return 0
    # Several processes share the port through SO_REUSEPORT; the kernel spreads connections.
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_serve_one, args=(cfg, url, True), name=f"gateway-worker-{i}")
        for i in range(cfg.workers)
    ]
    for p in procs:
        p.start()

    def stop(signum: int, frame: object) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs)


# --- worker ------------------------------------------------------------------


async def _run_worker(cfg: settings.Settings, url: str) -> None:
    from gateway import listen
    from gateway.delivery import outbox, webpush

    pool = await db.create_pool(url, min_size=1, max_size=cfg.db_pool_max)
    listener = listen.Listener(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        configured = cfg.vapid_private_key.reveal() if cfg.vapid_private_key else None
        async with db.acquire(pool) as conn:
            key = await webpush.load_key(conn, configured)
        sender = webpush.Sender(key, subject=cfg.vapid_subject)
        await sender.start()
        worker = outbox.Worker(
            pool, sender=sender, public_url=cfg.base_url, lease_seconds=cfg.outbox_lease_seconds
        )
        await worker.attach(listener)
        await listener.start(cfg.index_poll_seconds)
        worker.start()
        sys.stderr.write("gateway worker: delivering the outbox (Ctrl-C to stop)\n")
        await stop.wait()
        await worker.stop()
        await sender.close()
        sys.stderr.write(f"gateway worker: stopped after {worker.sent} pushes\n")
    finally:
        await listener.close()
        await pool.close()


def cmd_worker(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    url = db.resolve_url(cfg)
    if cfg.migrate_on_start:
        asyncio.run(_migrate(url))
    loop = _new_loop()
    try:
        loop.run_until_complete(_run_worker(cfg, url))
    finally:
        loop.close()
    return 0


def cmd_outbox_dead(args: argparse.Namespace) -> int:
    from geo import sql

    queries = sql.load("gateway.delivery")

    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        rows = await conn.fetch(queries["dead_letters"], args.merchant, 0, args.limit)
        return [{k: (str(v) if k.endswith("id") else v) for k, v in dict(r).items()} for r in rows]

    _print_json(asyncio.run(_with_db(_settings(args), work)))
    return 0


# --- wallet ------------------------------------------------------------------


def cmd_wallet_dev_certs(args: argparse.Namespace) -> int:
    from wallet import passes

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made = passes.dev_certificates(args.pass_type_id, args.team_id)
    files = {
        "wwdr-dev-ca.pem": made.ca_pem,
        "pass-certificate.pem": made.cert_pem,
        "pass-key.pem": made.key_pem,
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "pass-key.pem").chmod(0o600)
    (out / "README.txt").write_text(
        f"{passes.DEV_LABEL}\n\nA throwaway CA (standing in for Apple's WWDR certificate) and a "
        f"pass certificate for {args.pass_type_id} it signed. Passes signed with them verify "
        "against the CA with `openssl cms -verify -binary`, but Apple devices refuse them.\n"
    )
    _print_json(
        {
            "warning": passes.DEV_LABEL,
            "files": sorted(str(out / n) for n in [*files, "README.txt"]),
        }
    )
    return 0


# --- migrate -----------------------------------------------------------------


async def _migrate(url: str) -> list[migrate.Migration]:
    conn = await db.connect(url)
    try:
        return await migrate.migrate(conn)
    finally:
        await conn.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    applied = asyncio.run(_migrate(db.resolve_url(cfg)))
    _print_json(
        {
            "applied": [f"{m.version:04d}_{m.name}" for m in applied],
            "schema_version": migrate.latest_version(),
        }
    )
    return 0


# --- merchants ---------------------------------------------------------------


def cmd_merchants_create(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> tenancy.Merchant:
        return await tenancy.create_merchant(conn, args.name)

    merchant = asyncio.run(_with_db(_settings(args), work))
    _print_json({"id": str(merchant.id), "name": merchant.name})
    return 0


def cmd_merchants_list(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[tenancy.Merchant]:
        return await tenancy.list_merchants(conn)

    merchants = asyncio.run(_with_db(_settings(args), work))
    _print_json([{"id": str(m.id), "name": m.name} for m in merchants])
    return 0


# --- keys --------------------------------------------------------------------


def cmd_keys_create(args: argparse.Namespace) -> int:
    role = auth.Role(args.role)
    stores = frozenset(args.store) if args.store else None

    async def work(conn: asyncpg.Connection) -> tuple[int, str]:
        return await tenancy.create_key(
            conn, merchant_id=args.merchant, role=role, store_ids=stores, label=args.label
        )

    key_id, token = asyncio.run(_with_db(_settings(args), work))
    _print_json(
        {
            "id": str(key_id),
            "token": token,
            "role": role.value,
            "merchant_id": str(args.merchant),
            "store_ids": sorted(str(s) for s in stores) if stores else None,
        }
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> list[tenancy.KeyInfo]:
        return await tenancy.list_keys(conn, args.merchant)

    keys = asyncio.run(_with_db(_settings(args), work))
    _print_json(
        [
            {
                "id": str(k.id),
                "role": k.role.value,
                "store_ids": [str(s) for s in k.store_ids] if k.store_ids is not None else None,
                "label": k.label,
                "revoked": k.revoked_at is not None,
            }
            for k in keys
        ]
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> str | None:
        return await tenancy.revoke_key(conn, args.key_id, args.merchant)

    if asyncio.run(_with_db(_settings(args), work)) is None:
        raise errors.NotFound(f"merchant {args.merchant} has no key {args.key_id}")
    _print_json({"id": str(args.key_id), "revoked": True})
    return 0


def cmd_wallet_configure(args: argparse.Namespace) -> int:
    from wallet import apns, passes
    from wallet.store import passes as pass_store

    def read(path: str, what: str) -> str:
        try:
            return Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise errors.ValidationFailed(f"cannot read the {what} at {path}: {exc}") from None

    cert, key, wwdr = read(args.cert, "certificate"), read(args.key, "key"), read(args.wwdr, "WWDR")
    try:
        signer = passes.Signer.from_pem(cert.encode(), key.encode(), wwdr.encode())
        signer.check()
        signer.sign(b"{}")
    except (ValueError, TypeError) as exc:
        raise errors.ValidationFailed(f"the certificate, key or WWDR is unusable: {exc}") from None
    apns_key = read(args.apns_key, "APNs key") if args.apns_key else None
    if apns_key is not None:
        if not args.apns_key_id:
            raise errors.ValidationFailed("--apns-key needs --apns-key-id")
        try:
            apns.TokenAuth(apns_key.encode(), args.apns_key_id, args.team_id).header()
        except (ValueError, TypeError) as exc:
            raise errors.ValidationFailed(f"the APNs key is unusable: {exc}") from None

    async def work(conn: asyncpg.Connection) -> None:
        if await tenancy.get_merchant(conn, args.merchant) is None:
            raise errors.NotFound(f"no merchant {args.merchant}")
        await pass_store.put_wallet_config(
            conn,
            merchant_id=args.merchant,
            pass_type_id=args.pass_type_id,
            team_id=args.team_id,
            organization=args.organization,
            cert_pem=cert,
            key_pem=key,
            wwdr_pem=wwdr,
            apns_key_pem=apns_key,
            apns_key_id=args.apns_key_id if apns_key else None,
        )

    asyncio.run(_with_db(_settings(args), work))
    _print_json(
        {
            "merchant": str(args.merchant),
            "pass_type_id": args.pass_type_id,
            "team_id": args.team_id,
            "apns": "token" if apns_key else "certificate",
        }
    )
    return 0


def cmd_wallet_upkeep(args: argparse.Namespace) -> int:
    cfg = _settings(args)

    def progress(what: str, count: int) -> None:
        sys.stderr.write(f"\r{what}: {count}\x1b[K")
        if what == "coupon passes expired":
            sys.stderr.write("\n")
        sys.stderr.flush()

    async def work(conn: asyncpg.Connection) -> upkeep.Summary | None:
        pool = await db.create_pool(db.resolve_url(cfg), min_size=1, max_size=2)
        try:
            return await upkeep.run(pool, now=clock.SystemClock().now(), progress=progress)
        finally:
            await pool.close()

    summary = asyncio.run(_with_db(cfg, work))
    if summary is None:
        sys.stderr.write("gateway: another process is running upkeep; try again later\n")
        return 1
    _print_json(dataclasses.asdict(summary))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    cfg = _settings(args)
    if "GATEWAY_LOG_LEVEL" not in os.environ:
        # The counters and the summary are the demo's output; INFO lines would bury them.
        logging.getLogger().setLevel(logging.WARNING)
    options = demo.Options(
        seed=args.seed,
        shoppers=args.shoppers,
        stores=args.stores,
        hours=args.hours,
        out=Path(args.out),
    )
    server_url = db.resolve_url(cfg)
    sys.stderr.write(
        f"gateway demo: {options.stores} shops, {options.shoppers} shoppers, "
        f"{options.hours:g} simulated hours, seed {options.seed}, database "
        f"{demo.DB_NAME!r} on {db.describe(server_url)}\n"
    )

    def progress(summary: demo.Summary, now: dt.datetime) -> None:
        sys.stderr.write(demo.progress_line(summary, now))
        sys.stderr.flush()

    async def play() -> demo.Summary:
        return await demo.run(
            options,
            server_url=server_url,
            cfg=cfg,
            port=cfg.port if args.serve else 0,
            progress=progress,
            serve=args.serve,
        )

    try:
        summary = asyncio.run(play())
    except KeyboardInterrupt:
        sys.stderr.write("\nstopped\n")
        return 0
    sys.stderr.write("\n")
    sys.stdout.write(demo.render_summary(summary) + "\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from gateway.cli import bench

    return bench.main(
        quick=args.quick,
        only=args.only,
        out=Path(args.out),
        fences=args.fences,
        shoppers=args.shoppers,
        events=args.events,
        duration=args.duration,
        remote=_remote(args),
    )


def _remote(args: argparse.Namespace) -> tuple[str, str, str] | None:
    if not args.url:
        return None
    if not (args.manager_token and args.app_token):
        raise errors.ValidationFailed("--url needs --manager-token and --app-token")
    return (args.url, args.manager_token, args.app_token)


def cmd_pings_purge(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    days = args.older_than_days if args.older_than_days is not None else cfg.ping_retention_days
    cutoff = clock.SystemClock().now() - dt.timedelta(days=days)

    def progress(total: int) -> None:
        sys.stderr.write(f"\rdeleted {total} pings...")
        sys.stderr.flush()

    async def work(conn: asyncpg.Connection) -> int | None:
        return await retention.purge(conn, older_than=cutoff, progress=progress)

    deleted = asyncio.run(_with_db(cfg, work))
    sys.stderr.write("\n")
    if deleted is None:
        sys.stderr.write("gateway: another process is purging right now; try again later\n")
        return 1
    _print_json({"deleted": deleted, "cutoff": cutoff.isoformat()})
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    if cfg.database_url is None:
        # Keep the embedded server up after we exit, so the URL stays usable.
        server = db.EmbeddedServer(cfg.data_dir, keep_running=True)
        sys.stdout.write(server.url() + "\n")
    else:
        sys.stdout.write(settings.mask_url(cfg.database_url.reveal()) + "\n")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    cfg = _settings(args)
    if cfg.database_url is not None:
        sys.stderr.write("gateway: DATABASE_URL is set; there is no embedded server to stop\n")
        return 2
    db.EmbeddedServer(cfg.data_dir).unpin_and_stop()
    sys.stderr.write("embedded PostgreSQL stopped\n")
    return 0


# --- parser ------------------------------------------------------------------


def _positive_id(text: str) -> int:
    value = api.as_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (digits only)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Geo-triggered offer and mobile-wallet gateway. With DATABASE_URL unset, "
        "an embedded PostgreSQL is kept under GATEWAY_DATA_DIR (default ./.gateway).",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (env GATEWAY_LOG_LEVEL)")
    parser.add_argument(
        "--log-format", choices=["text", "json"], help="log line format (env GATEWAY_LOG_FORMAT)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the HTTP API",
        description="Run the HTTP API. Applies pending migrations first unless --no-migrate.",
    )
    serve.add_argument("--host", help="address to bind (env GATEWAY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (env GATEWAY_PORT, default 8080)")
    serve.add_argument(
        "--workers", type=int, help="processes sharing the port (env GATEWAY_WORKERS, default 1)"
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    serve.set_defaults(func=cmd_serve)

    wk = sub.add_parser(
        "worker",
        help="run the delivery workers alone (no HTTP)",
        description="Drain the outbox to Web Push and the wallet. serve runs the same "
        "worker in every process; run this to scale delivery apart from the API.",
    )
    wk.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    wk.set_defaults(func=cmd_worker)

    ob = sub.add_parser("outbox", help="delivery outbox", description="The delivery outbox.")
    osub = ob.add_subparsers(dest="action", required=True, metavar="ACTION")
    od = osub.add_parser(
        "dead",
        help="list dead-lettered deliveries and why they gave up",
        description="List deliveries that gave up (dead letters) as JSON.",
    )
    od.add_argument("--merchant", type=_positive_id, required=True, help="merchant id")
    od.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    od.set_defaults(func=cmd_outbox_dead)

    wal = sub.add_parser("wallet", help="Apple Wallet helpers", description="Apple Wallet helpers.")
    wsub = wal.add_subparsers(dest="action", required=True, metavar="ACTION")
    dc = wsub.add_parser(
        "dev-certs",
        help="make a local test CA and pass certificate (not valid on Apple devices)",
        description="Write a throwaway CA (standing in for Apple's WWDR certificate), a pass "
        "certificate and its key to --out. They are labelled as not valid on Apple devices.",
    )
    dc.add_argument("--out", default="wallet-dev-certs", help="directory (./wallet-dev-certs)")
    dc.add_argument("--pass-type-id", default="pass.dev.gateway", help="pass type identifier")
    dc.add_argument("--team-id", default="DEVTEAM000", help="team identifier")
    dc.set_defaults(func=cmd_wallet_dev_certs)
    cf = wsub.add_parser(
        "configure",
        help="set a merchant's pass certificates and APNs key (files, e.g. mounted secrets)",
        description="Store the merchant's Pass Type ID certificate, its private key and "
        "Apple's WWDR certificate (PEM files), and optionally an APNs auth key (.p8) for "
        "token-based pass-update pushes; without one, the pass certificate is used. The "
        "files are checked (the key must sign with the certificate) before anything is "
        "stored. Replaces the development certificates made on first use.",
    )
    cf.add_argument("--merchant", type=_positive_id, required=True, help="merchant id")
    cf.add_argument("--pass-type-id", required=True, help="e.g. pass.com.example.loyalty")
    cf.add_argument("--team-id", required=True, help="the Apple developer team id")
    cf.add_argument("--organization", required=True, help="shown on the pass")
    cf.add_argument("--cert", required=True, help="pass certificate, PEM")
    cf.add_argument("--key", required=True, help="its private key, PEM (unencrypted)")
    cf.add_argument("--wwdr", required=True, help="Apple WWDR intermediate certificate, PEM")
    cf.add_argument("--apns-key", help="APNs auth key (.p8), PEM")
    cf.add_argument("--apns-key-id", help="the APNs key's id (10 characters)")
    cf.set_defaults(func=cmd_wallet_configure)
    up = wsub.add_parser(
        "upkeep",
        help="expire points, recompute tiers, refresh expired coupon passes",
        description="One wallet upkeep pass (serve runs it every GATEWAY_WALLET_UPKEEP_SECONDS): "
        "points older than the merchant's points_expire_days expire, oldest first; tiers are "
        "recomputed from the points earned in the tier window (so they can fall); coupon "
        "passes whose coupon expired unredeemed are marked. Every change queues an APNs pass "
        "update. Prints a JSON summary.",
    )
    up.set_defaults(func=cmd_wallet_upkeep)

    dm = sub.add_parser(
        "demo",
        help="play a simulated morning of a coffee chain through the API, with a report",
        description="Make a fresh database 'gateway_demo' (on the embedded PostgreSQL "
        "unless DATABASE_URL is set), start the gateway and a local Web Push service in "
        "this process, and simulate one weekday morning in Paris: shops, geofences, ten "
        "offers, and shoppers walking with GPS noise who ping, get pushes, open coupons, "
        "redeem them and buy. Prints live counters, then the funnel per offer, "
        "suppressions by reason and the uplift against the holdout; writes an HTML report.",
    )
    dm.add_argument("--seed", type=int, default=7, help="random seed (7); same seed, same run")
    dm.add_argument("--shoppers", type=int, default=300, help="simulated shoppers (300)")
    dm.add_argument("--stores", type=int, default=36, help="coffee shops (36)")
    dm.add_argument("--hours", type=float, default=8.0, help="simulated hours from 06:00 (8)")
    dm.add_argument("--out", default="demo-report.html", help="the HTML report's path")
    dm.add_argument(
        "--serve",
        action="store_true",
        help="keep the gateway running on --port afterwards and print tokens to explore it",
    )
    dm.add_argument("--port", type=int, help="port for --serve (8080)")
    dm.set_defaults(func=cmd_demo)

    bn = sub.add_parser(
        "bench",
        help="measure every headline figure next to a baseline from the same run",
        description="Run the benchmark scripts of the source tree (tests/benchmarks/) one "
        "after another: geofence matching, POST /v1/pings throughput and latency (wrk "
        "against a gateway and a bare aiohttp handler it starts), Web Push fan-out and "
        "ping-to-push latency, signed passes, redemptions under concurrency and the funnel "
        "report. Each starts its own gateway on a fresh database (DATABASE_URL's server, "
        "else embedded). Shows progress, prints a table and writes JSON. Needs wrk "
        "(apt-get install wrk).",
    )
    bn.add_argument("--out", default="bench.json", help="JSON results (./bench.json)")
    bn.add_argument("--only", nargs="+", metavar="STEP", help="matching pings push passes offers")
    bn.add_argument("--quick", action="store_true", help="small sizes: a smoke run in ~2 min")
    bn.add_argument("--fences", type=int, default=100_000, help="geofences (100,000)")
    bn.add_argument("--shoppers", type=int, default=100_000, help="shoppers pinging (100,000)")
    bn.add_argument("--events", type=int, default=10_000_000, help="decision events (10M)")
    bn.add_argument("--duration", type=int, default=10, help="seconds per load phase (10)")
    bn.add_argument(
        "--url",
        help="measure a running gateway's pings instead of starting one; give a merchant "
        "set aside for benchmarking (its geofences are replaced, --shoppers are enrolled)",
    )
    bn.add_argument("--manager-token", help="with --url: a manager key of that merchant")
    bn.add_argument("--app-token", help="with --url: an app key of that merchant")
    bn.set_defaults(func=cmd_bench)

    mig = sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending migrations under an advisory lock; safe to "
        "run from several replicas at once.",
    )
    mig.set_defaults(func=cmd_migrate)

    merchants = sub.add_parser(
        "merchants", help="manage merchants (tenants)", description="Manage merchants (tenants)."
    )
    msub = merchants.add_subparsers(dest="action", required=True, metavar="ACTION")
    mc = msub.add_parser(
        "create",
        help='create a merchant; prints {"id": ...}',
        description="Create a merchant and print its id as JSON.",
    )
    mc.add_argument("--name", required=True, help="the merchant's display name")
    mc.set_defaults(func=cmd_merchants_create)
    ml = msub.add_parser("list", help="list merchants", description="List merchants as JSON.")
    ml.set_defaults(func=cmd_merchants_list)

    keys = sub.add_parser("keys", help="manage API keys", description="Manage API keys.")
    ksub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    kc = ksub.add_parser(
        "create",
        help='create an API key; prints {"token": ...} once',
        description="Create an API key and print its token once, as JSON. Only a hash is kept.",
    )
    kc.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in auth.Role if r is not auth.Role.SHOPPER],
        help="what the key may do",
    )
    kc.add_argument("--merchant", required=True, type=_positive_id, help="merchant id")
    kc.add_argument(
        "--store",
        action="append",
        type=_positive_id,
        metavar="ID",
        help="scope the key to this store (repeat for several); default: all stores",
    )
    kc.add_argument("--label", help="a note to recognise the key by")
    kc.set_defaults(func=cmd_keys_create)
    kl = ksub.add_parser(
        "list",
        help="list a merchant's keys (never tokens)",
        description="List a merchant's operator keys as JSON.",
    )
    kl.add_argument("--merchant", required=True, type=_positive_id, help="merchant id")
    kl.set_defaults(func=cmd_keys_list)
    kr = ksub.add_parser("revoke", help="revoke a key", description="Revoke a key at once.")
    kr.add_argument("--merchant", required=True, type=_positive_id, help="merchant id")
    kr.add_argument("key_id", type=_positive_id, help="the key's id")
    kr.set_defaults(func=cmd_keys_revoke)

    pings = sub.add_parser(
        "pings", help="raw ping log maintenance", description="Raw ping log maintenance."
    )
    psub = pings.add_subparsers(dest="action", required=True, metavar="ACTION")
    pp = psub.add_parser(
        "purge",
        help="delete raw pings older than the retention period",
        description="Delete raw pings received before the retention period "
        "(GATEWAY_PING_RETENTION_DAYS, default 30). serve also does this hourly.",
    )
    pp.add_argument("--older-than-days", type=float, help="override the retention period")
    pp.set_defaults(func=cmd_pings_purge)

    dbp = sub.add_parser("db", help="database helpers", description="Database helpers.")
    dsub = dbp.add_subparsers(dest="action", required=True, metavar="ACTION")
    du = dsub.add_parser(
        "url",
        help="print the database URL (starts the embedded server)",
        description="Print the database URL, for psql. With the embedded "
        "server, it is started and left running.",
    )
    du.set_defaults(func=cmd_db_url)
    ds = dsub.add_parser(
        "stop",
        help="stop the embedded server (undoes `db url`)",
        description="Stop the embedded PostgreSQL now, even if `gateway db url` left it up.",
    )
    ds.set_defaults(func=cmd_db_stop)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = _settings(args)
    except settings.SettingsError as exc:
        parser.error(str(exc))
    logs.configure(cfg.log_level, cfg.log_format)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except errors.ApiError as exc:
        sys.stderr.write(f"gateway: {exc.message}\n")
        for field, problem in exc.fields.items():
            sys.stderr.write(f"  {field}: {problem}\n")
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        sys.stderr.write(f"gateway: database error: {logs.scrub(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
