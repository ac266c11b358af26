"""The change listener: caches are told to forget when the link drops and comes back, not
when it first connects (they were just loaded), and it reconnects by itself."""

from __future__ import annotations

import asyncio

import asyncpg

from gateway import listen


async def test_lost_hooks_run_on_reconnect_not_on_first_connect(
    database_url: str, conn: asyncpg.Connection
) -> None:
    listener = listen.Listener(database_url)
    lost: list[int] = []
    heard: list[str] = []
    listener.on_lost(lambda: lost.append(1))
    listener.subscribe("test_channel", heard.append)
    await listener.start(retry_seconds=0.05)
    try:
        assert listener.alive and lost == []
        await conn.execute("SELECT pg_notify('test_channel', 'one')")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        assert heard == ["one"]

        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() "
            # Only this test's database: other xdist workers share the server.
            "AND datname = current_database()"
        )
        for _ in range(250):
            if listener.alive and len(lost) >= 2:
                break
            await asyncio.sleep(0.02)
        # Once when the link dropped, once more when it came back.
        assert listener.alive and len(lost) == 2
        await conn.execute("SELECT pg_notify('test_channel', 'two')")
        for _ in range(100):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.02)
        assert heard == ["one", "two"]
    finally:
        await listener.close()
