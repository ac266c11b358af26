"""`gateway demo`: the whole product on a simulated city, through the real HTTP API.

It makes a fresh database, starts the gateway in this process on a loopback port (with
a clock the simulation moves, so a day passes in about a minute), starts a local Web
Push service (gateway.demo.localpush: it checks each VAPID JWT and decrypts each payload),
and then plays one weekday morning in central Paris:

1. the city: a merchant, a few dozen coffee shops on real Paris streets (positions are
   generated near them, seeded), a geofence each (circles, and polygons for some
   blocks), and ten offers that show the rules (cold mornings, rain, a tier-only offer,
   a 20 % holdout, a lunch dwell offer, a budget, a paused and a weekend-only offer);
2. the shoppers: hundreds of them walk from home to a shop and on, pinging every 30
   simulated seconds with GPS noise and varying accuracy; a share subscribe to Web
   Push; some open their coupons, redeem them at the till (a few try a second scan,
   which fails), and buy; held-out shoppers buy too, less often;
3. progress: live counters on stderr;
4. the results: the per-offer funnel from the reports API, suppressions by reason, and
   the uplift against the holdout; an HTML report with a map and charts.

Everything is seeded: the same --seed gives the same walk, decisions and summary. The
city's data is in `city`, the play in `simulation`, the output in `report`. Nothing here
is imported by `gateway serve`: the `demo` command imports it when it runs.
"""

from __future__ import annotations

from gateway.demo.city import DB_NAME
from gateway.demo.report import Summary, progress_line, render_summary
from gateway.demo.simulation import Options, run

__all__ = ["DB_NAME", "Options", "Summary", "progress_line", "render_summary", "run"]
