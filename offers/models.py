"""Domain values of the offers package: offer rules, the shopper and ping context a decision
sees, decisions with their reason codes, coupons and redemptions.

Everything here is an immutable value; the logic lives in the sibling modules
(`decide`, `codes`, `stats`) and the SQL in `store`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

# "journey": sent only by a lifecycle journey (offers.journeys), never on a ping.
Trigger = Literal["enter", "dwell", "journey"]
Channel = Literal["inbox", "webpush", "wallet"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
BarcodeFormat = Literal["qr", "pdf417", "aztec", "code128"]
OfferStatus = Literal["active", "paused"]

# Why a candidate offer was not sent. The order is the order in which `decide` checks
# them, so the reason recorded is the first rule that failed.
Reason = Literal[
    "no_consent",
    "quiet_hours",
    "outside_schedule",
    "occurrence_lapsed",
    "store_closed",
    "weather_mismatch",
    "audience_mismatch",
    "budget_exhausted",
    "frequency_capped",
    "fatigue_capped",
    "holdout",
    "lower_priority",
]
# The same reasons as a tuple, in that order, for checks and listings.
REASONS: tuple[Reason, ...] = get_args(Reason)
# The reasons that say the offer's targeting did not match the shopper or the moment
# (consent, quiet hours, schedule, a journey's moment, opening hours, weather, audience).
# They come first in the checking order, so a candidate recorded with any other reason,
# or sent, passed all of them: the funnel counts it as eligible (offers.report).
TARGETING_REASONS: tuple[Reason, ...] = (
    "no_consent",
    "quiet_hours",
    "outside_schedule",
    "occurrence_lapsed",
    "store_closed",
    "weather_mismatch",
    "audience_mismatch",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cap:
    """At most `max` coupons of one offer per shopper within any `seconds`-long window."""

    max: int
    seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WeatherRule:
    """Matches when the ping's condition is in `conditions` (any, if None) and the
    temperature is within [min_temp_c, max_temp_c] (open ends when None).

    A ping without weather never matches a rule: an offer for cold mornings must not
    fire when the app does not know the temperature.
    """

    conditions: frozenset[str] | None = None
    min_temp_c: float | None = None
    max_temp_c: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Audience:
    """Who may get the offer. Every given criterion must hold.

    - `tiers`: the shopper's loyalty tier is one of these.
    - `min_points`, `max_points`: the points balance is within the range (inclusive).
    - `tags`: the shopper carries at least one of these segment tags.
    - `exclude_tags`: the shopper carries none of these.
    """

    tiers: frozenset[str] | None = None
    min_points: int | None = None
    max_points: int | None = None
    tags: frozenset[str] | None = None
    exclude_tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponSpec:
    discount: str
    valid_minutes: int
    barcode_format: BarcodeFormat = "qr"
    # A number for reports and POS systems: a percentage or an amount off, when known.
    discount_pct: float | None = None
    discount_amount: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """An offer rule as the decision engine sees it.

    `schedule` uses the opening-hours format of stores ({"mon": ["07:00-10:30"], ...}) and
    is evaluated in the time zone of the store where the trigger happened. None means at
    any time within the validity period.

    An offer is not sent while the store where it triggered is closed (by the store's
    opening hours), as a shopper walking past a shut door would expect; `fire_when_closed`
    opts out, for offers meant to bring people back later.
    """

    id: int
    merchant_id: int
    name: str
    title: str
    body: str
    channels: tuple[Channel, ...]
    trigger: Trigger
    geofence_ids: frozenset[int] = frozenset()
    store_ids: frozenset[int] = frozenset()
    # Every store the offer touches (its stores and its geofences' stores): where its
    # coupons are valid.
    scope_store_ids: frozenset[int] = frozenset()
    status: OfferStatus = "active"
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    schedule: Mapping[str, Sequence[str]] | None = None
    weather: WeatherRule | None = None
    audience: Audience | None = None
    caps: tuple[Cap, ...] = ()
    budget_issued: int | None = None
    budget_redeemed: int | None = None
    issued_count: int = 0
    redeemed_count: int = 0
    priority: int = 0
    holdout_pct: float = 0.0
    coupon: CouponSpec
    image_url: str | None = None
    fire_when_closed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """Merchant-wide rules that protect shoppers from fatigue.

    - `daily_cap`: at most this many offers sent to a shopper in any 24 hours, all
      offers together (None: no cap).
    - `quiet_start`, `quiet_end`: minutes after local midnight in the shopper's time zone
      (the store's when the shopper set none) during which nothing is sent; the window may
      run past midnight (21:00-08:00). Equal values mean no quiet hours.
    """

    daily_cap: int | None = 3
    quiet_start: int = 21 * 60
    quiet_end: int = 8 * 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """An earlier decision that counts against caps: a send, or a holdout's "would send"."""

    offer_id: int
    at: dt.datetime
    held_out: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopperState:
    shopper_id: int
    marketing_consent: bool
    timezone: str | None = None
    tier: str | None = None
    points: int = 0
    tags: frozenset[str] = frozenset()
    # Exposures recent enough to matter for the candidates' caps and the daily cap.
    history: tuple[Exposure, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """An offer whose trigger fired at one of its places on this ping."""

    offer: Offer
    fence_id: int
    store_id: int
    store_timezone: str
    # The store's weekly opening hours (geo.places format); None: always open.
    store_hours: Mapping[str, Sequence[str]] | None = None
    # A journey's occurrence (offers.journeys) is worth sending only before this moment;
    # after it the decision is `occurrence_lapsed`. None for offers triggered by a ping.
    due_by: dt.datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What the ping says about the moment: when, and the weather if the app knows it."""

    now: dt.datetime
    weather_condition: str | None = None
    temp_c: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The verdict on one candidate: a send (reason None) or a suppression with a reason."""

    offer_id: int
    fence_id: int
    store_id: int
    send: bool
    reason: Reason | None = None

    @property
    def held_out(self) -> bool:
        return self.reason == "holdout"


@dataclass(frozen=True, slots=True, kw_only=True)
class Coupon:
    id: int
    merchant_id: int
    offer_id: int
    shopper_id: int
    code: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    store_ids: frozenset[int] = field(default_factory=frozenset)
