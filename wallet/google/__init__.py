"""Google Wallet: how our objects are named (`ids`), and the save and delete callbacks
Google signs with the ECv2SigningOnly protocol (`callback`, verified against Google's
root signing keys from `rootkeys`)."""
