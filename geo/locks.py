"""Every PostgreSQL advisory lock the service takes, declared once so no two collide.

Advisory locks share one key space per server, so each id is listed here with what it
guards; code and ``.sql`` files take the id as a parameter and never spell a key
themselves (tests/geo/test_locks.py checks both). It lives in ``geo``, the bottom
layer, so that every package may import it. The fixed ids are the ASCII bytes of a
short label; changing one lets an old and a new replica run the same job at once.
"""

from __future__ import annotations

from typing import Final

# -- fixed ids (bigint keys) ---------------------------------------------------------

# "gwmigrat" with the sign bit flipped: one process at a time applies migrations
# (gateway/migrate.py), held for the whole run; the others wait for it.
MIGRATE: Final = 0x67776D6967726174 - (1 << 63)

# "gwpurge": one replica at a time purges old pings and spool marks
# (gateway/jobs/retention.py, `gateway pings purge`).
RETENTION: Final = 0x67777075726765

# "gwstats": one replica at a time folds funnel deltas into the rollups
# (gateway/jobs/stats.py).
STATS: Final = 0x67777374617473

# "gwupkeep": one replica at a time expires points, recomputes tiers and expires coupon
# passes (gateway/jobs/upkeep.py, `gateway wallet upkeep`).
UPKEEP: Final = 0x6777_7570_6B65_6570

# "gwparts": one replica at a time creates the event tables' time partitions ahead of time
# (gateway/jobs/partitions.py).
PARTITIONS: Final = 0x67777061727473
# "gwsurvey": one replica at a time sends the survey invitations that came due
# (gateway/pingpath/surveying.py, wired in gateway/app.py).
SURVEYS: Final = 0x6777737572766579
# "gwjourny": one replica at a time finds and decides lifecycle journeys' occurrences
# (gateway/jobs/journeys.py).
JOURNEYS: Final = 0x67776A6F75726E79

# "gwpinglg": ping log batches hold it shared and an erasure exclusively, so an erasure
# never misses the pings of a batch in flight (geo/store.py, accounts/privacy.py).
PING_LOG: Final = 0x677770696E676C67

# -- keyed families (hashtextextended(prefix || key, 0)) -----------------------------

# Per merchant: serialises bulk replacements of one merchant's geofence set
# (geo/store.py lock_geofence_set, the `lock_geofences` query).
GEOFENCE_SET: Final = "geofences:"
