-- Shopper privacy: an erased shopper keeps a pseudonymous row (its id still keys the
-- purchases, ledger and offer history that reports and accounting need), with every
-- personal field cleared and the time of erasure.

ALTER TABLE shoppers ADD COLUMN erased_at timestamptz;
