"""Benchmark of "Save to Google Wallet" links per second in one process: the gateway's
signer, which parses the service-account key once, next to plain `google.auth.jwt.encode`
with a fresh `google.auth.crypt.RSASigner` made for every link (the way Google's samples
do it), in the same run. Both sign the same claims with the same RSA-2048 key.

The two are measured in alternated rounds (ours, theirs, ours, ...) and each side's best
round counts, so a slow moment of the machine hurts neither side alone.

Run: python tests/benchmarks/bench_google_links.py [--links 2000] [--fresh 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402


def _rate(make: Callable[[int], str], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        make(i)
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=2000, help="links per round, cached signer")
    parser.add_argument("--fresh", type=int, default=100, help="links per round, fresh signer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    from google.auth import crypt, jwt

    from wallet.google import account, links, objects

    sa = account.parse(json.dumps(account.dev_service_account()))
    program = objects.Program(
        issuer_id="3388000000022000001",
        merchant_id=1,
        issuer_name="Bench Coffee",
        program_name="Bench Rewards",
        logo_url="https://example.com/logo.png",
    )
    places = [(48.8 + i / 1000, 2.3) for i in range(10)]

    def claim_set(i: int) -> dict[str, object]:
        card = objects.LoyaltyCard(
            object_id=f"{program.issuer_id}.loyalty-{i:032x}",
            class_id=objects.loyalty_class_id(program),
            member_code=f"M{i:08d}",
            member_name="Ada",
            points=i,
            tier="Gold",
            places=places,
        )
        return links.claims(
            sa.client_email,
            iat=1_768_204_800 + i,
            origins=["https://gw.example"],
            loyalty_objects=[objects.loyalty_object(card)],
        )

    signer = links.LinkSigner(sa)

    def ours(i: int) -> str:
        return signer.save_url(claim_set(i))

    def fresh(i: int) -> str:
        # Plain google-auth, a new signer each call: the PEM is parsed every time.
        rsa = crypt.RSASigner.from_service_account_info(sa.info)
        token: bytes = jwt.encode(rsa, claim_set(i))
        return links.SAVE_URL + token.decode("ascii")

    assert ours(1) == fresh(1)  # the same link either way (RS256 is deterministic)
    best_ours = best_fresh = 0.0
    for _ in range(args.rounds):
        best_ours = max(best_ours, _rate(ours, args.links))
        best_fresh = max(best_fresh, _rate(fresh, args.fresh))
    size = len(ours(0))

    print()
    print("Save to Google Wallet links (RS256, RSA-2048 service-account key), one process,")
    print(f"best of {args.rounds} alternated rounds")
    print(f"  gateway (key parsed once):          {best_ours:8.0f} links/s  ({size} B each)")
    print(f"  google.auth.jwt.encode, new signer: {best_fresh:8.0f} links/s")
    print(f"  ratio: {best_ours / best_fresh:.1f}x")
    figures.write(
        args.json,
        [
            figures.row(
                "Google Wallet save links per second",
                best_ours,
                "links/s",
                baseline=best_fresh,
                baseline_name="google.auth.jwt.encode with a fresh RSASigner per link",
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
