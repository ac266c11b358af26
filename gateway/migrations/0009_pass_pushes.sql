-- APNs pass-update pushes: the merchant's APNs auth key (token auth; without
-- one, the pass certificate is used), and a claimable queue of pass updates.

ALTER TABLE wallet_configs
    ADD COLUMN apns_key_pem text,
    ADD COLUMN apns_key_id text;

ALTER TABLE pass_updates
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN available_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN leased_until timestamptz,
    ADD COLUMN last_error text;
