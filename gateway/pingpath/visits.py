"""Each process's copy of shoppers' visit state, so a ping that changes nothing reads nothing.

The ping path relies on it in one place (`PingService` reads a shopper's state here first
and from the database only when absent). Entries come from three sources:

- the auth read: the query that loads a shopper's API key joins the shopper's state
  (`get_api_keys` in gateway/accounts/queries.sql), and the app wires the token verifier
  to `prime`, so a shopper's first ping on this process costs no read of its own;
- the ping path's own read, when a shopper has no entry;
- the ping path's writes, which keep the state they wrote.

And they go by these rules, all kept here:

- another process or replica wrote the shopper's state: the database announces it
  (NOTIFY `geo.store.VISITS_CHANNEL`, payload `origin:shopper`) and the entry is dropped;
  this process's own writes carry its origin and are skipped;
- the listener lost its connection, so announcements may have been missed: all entries;
- a unit of work failed half-way (`drop`): that shopper's entry;
- the table is full: all entries.

A stale entry can only make a ping look like a change, and changes are recomputed from
the database's state under compare-and-set or the shopper's row lock.
"""

from __future__ import annotations

import secrets

import asyncpg

from gateway import listen
from geo import store as geo_store

MAX_ENTRIES = 1_000_000


class VisitCache:
    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._states: dict[int, geo_store.ShopperGeo] = {}
        # Tags this process's writes, so their announcements do not drop what they wrote.
        self.origin = secrets.token_hex(6)

    def attach(self, listener: listen.Listener) -> None:
        listener.subscribe(geo_store.VISITS_CHANNEL, self._on_visits_changed)
        listener.on_lost(self.clear)

    def get(self, shopper_id: int) -> geo_store.ShopperGeo | None:
        return self._states.get(shopper_id)

    def __getitem__(self, shopper_id: int) -> geo_store.ShopperGeo:
        return self._states[shopper_id]

    def prime(self, shopper_id: int, row: asyncpg.Record) -> None:
        """Keep the state read together with the shopper's API key, unless one is kept."""
        if shopper_id not in self._states:
            self.keep(shopper_id, geo_store.shopper_geo_from_row(row))

    def keep(self, shopper_id: int, state: geo_store.ShopperGeo) -> None:
        """Keep `state`, unless a newer version is kept: requests finish in any order."""
        kept = self._states.get(shopper_id)
        if kept is not None and (state.version or 0) < (kept.version or 0):
            return
        if kept is None and len(self._states) >= self._max:
            self._states.clear()
        self._states[shopper_id] = state

    def drop(self, shopper_id: int) -> None:
        self._states.pop(shopper_id, None)

    def clear(self) -> None:
        self._states.clear()

    def _on_visits_changed(self, payload: str) -> None:
        origin, _, shopper = payload.partition(":")
        if origin != self.origin and shopper.isdigit():
            self.drop(int(shopper))
