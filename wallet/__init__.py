"""Loyalty and Apple Wallet: the points ledger and tiers, pass building and signing, and
APNs pass-update pushes.

`loyalty` is pure arithmetic and `passes` builds and signs passes in memory; the I/O is
in `store` (SQL, in the caller's transaction) and `apns` (HTTP/2 to Apple's push service).
"""
