"""Campaigns: offer rules, the decision engine, coupon codes, redemptions and funnel reports.

`models` holds the values, `decide`, `codes`, `report` and `stats` are pure logic, and
`errors` the domain errors. The I/O is SQL: `store` (with `queries.sql`) in the caller's
transaction, and `redeem`, which redeems and voids through the plpgsql functions of
`functions.sql`.
"""
