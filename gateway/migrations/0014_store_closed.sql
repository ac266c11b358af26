-- Opening hours decide offers: by default an offer is not sent while the store
-- where it triggered is closed (reason store_closed); an offer can opt out. The
-- triggers that reload the offer books on these columns are in offers/functions.sql.

ALTER TABLE offers
    ADD COLUMN fire_when_closed boolean NOT NULL DEFAULT false;

-- The reason list grows by one, in the order decide() checks them.
ALTER TABLE decisions DROP CONSTRAINT ck__decisions__reason;
ALTER TABLE decisions ADD CONSTRAINT ck__decisions__reason CHECK (reason IN (
    'no_consent', 'quiet_hours', 'outside_schedule', 'store_closed', 'weather_mismatch',
    'audience_mismatch', 'budget_exhausted', 'frequency_capped', 'fatigue_capped',
    'holdout', 'lower_priority'));

