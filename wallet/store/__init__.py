"""SQL access for the wallet: the points ledger, passes, and upkeep, one module each."""
