"""Google Wallet, beside Apple Wallet: the issuer's service account, the class and object
JSON of the loyalty card and coupons, "Save to Google Wallet" links and the notification
quota. Plain Python; the REST calls and the update worker are in gateway/delivery.
"""
