"""Google Wallet, beside Apple Wallet: the issuer's service account, the class and object
JSON of the loyalty card and coupons, "Save to Google Wallet" links and the notification
quota; how our objects are named (`ids`); and the save and delete callbacks Google signs
with the ECv2SigningOnly protocol (`callback`, verified against Google's root signing keys
from `rootkeys`). Plain Python; the REST calls and the update worker are in
gateway/delivery.
"""
