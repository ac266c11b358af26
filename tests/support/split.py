"""What the second CI pass (the suite against a local PostgreSQL server) runs, and why.

The first pass runs every test on the embedded PostgreSQL. The second runs again what
depends on the server itself (``server``) plus a fixed sample of the rest (``sample``):
``pytest -m "server or sample"``. Keys are test files or test ids, relative to the root;
tests/conftest.py marks the collected tests from these tables.
"""

from __future__ import annotations

G = "tests/gateway/"

# Processes, connections, locks and NOTIFY on the server itself.
SERVER: dict[str, str] = {
    G + "test_replicas.py": "replicas behind nginx on one database: caps, kill -9, a restart",
    G + "test_rewards_replicas.py": "replicas behind nginx: reward stock, limits, points at tills",
    G + "test_pgbouncer.py": "a real PgBouncer in front of the server, pooling its connections",
    G + "test_serve.py": "serve processes racing to migrate, several workers, NOTIFY sync",
    G + "test_metrics.py::test_several_workers_add_up_in_one_scrape": (
        "serve --workers 2: processes sharing one metrics directory"
    ),
    G + "test_listen.py": "LISTEN/NOTIFY, and a listener whose backend is terminated",
    G + "test_migrations.py": "migrations under the advisory lock, the catalog's names",
    G + "test_jobs.py": "periodic jobs under advisory locks that other sessions hold",
    G + "test_partitions.py": (
        "partitioned tables converted by a migration, DDL racing writers on other connections"
    ),
    G + "test_spool.py": "spool directories named by the server's URL, replay after kill -9",
    G + "test_places_races.py": "concurrent geofence writes: row locks and the change counter",
    G + "test_errors.py::test_database_down_is_503_with_retry_after": (
        "the server refuses connections and terminates the pool's backends"
    ),
    G + "test_bench.py::test_bench_pings_measures_the_gateway_its_floor_and_the_bare_handler": (
        "the bench makes and drops its own database on DATABASE_URL's server"
    ),
    G + "test_bench.py::test_bench_measures_what_the_metrics_cost_on_a_ping": (
        "the bench makes and drops its own database on DATABASE_URL's server"
    ),
    G + "test_cli.py::test_migrate_command_reports_what_it_applied": "migrate in a subprocess",
    G + "test_cli.py::test_merchants_and_keys_from_the_command_line": "CLI in subprocesses",
    G + "test_webpush.py::TestWorkerCrash": "gateway worker processes, kill -9 mid batch",
    G + "test_webpush.py::test_a_worker_started_after_the_listener_still_wakes_on_notify": (
        "a worker woken by NOTIFY"
    ),
    G + "test_webpush.py::test_two_workers_share_a_backlog_without_sending_twice": (
        "FOR UPDATE SKIP LOCKED across processes"
    ),
    G + "test_offers.py::TestConcurrency": "caps, budgets, single use under parallel requests",
    G + "test_offers.py::TestAtomicity": "a backend terminated mid commit",
    G + "test_pings.py::test_parallel_pings_from_one_shopper_enter_once": "row locks",
    G + "test_referrals_replicas.py": "replicas behind nginx: one referral reward, the cap",
    G + "test_referrals.py::test_twenty_parallel_first_purchases_pay_one_reward": "row locks",
    G + "test_pings.py::test_a_failed_log_write_is_a_503_and_keeps_nothing_in_sync_mode": (
        "a backend terminated during the group commit"
    ),
    G + "test_pings.py::test_index_hot_swap_while_pings_run": "NOTIFY of geofence changes",
    G + "test_inbox.py::TestInbox::test_live_feed_streams_a_new_coupon_within_a_second": (
        "the live feed woken by NOTIFY"
    ),
    G + "test_inbox.py::TestOutbox::test_a_dead_workers_rows_are_taken_over_after_the_lease": (
        "outbox leases taken over between connections"
    ),
}

# A fixed sample of the rest: the main stories, once more on the server.
SAMPLE: dict[str, str] = {
    G + "test_smoke.py": "the app starts and answers",
    G + "test_pings.py::TestTransitions": "enter, dwell and exit through the API",
    G + "test_offers.py::TestCoffeeShop": "the cold-morning coupon, its redemption and void",
    G + "test_reports.py::TestFunnel": "funnel and uplift from the logs, stats compaction",
    G + "test_loyalty.py": "points, tiers and the ledger through the API",
}


def marker_of(nodeid: str) -> str | None:
    """``server``, ``sample`` or None for a collected test id."""
    for name, table in (("server", SERVER), ("sample", SAMPLE)):
        if any(nodeid == key or nodeid.startswith((key + "::", key + "[")) for key in table):
            return name
    return None
