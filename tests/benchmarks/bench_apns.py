"""Benchmark of APNs pass-update fan-out: pushes per second to the local HTTP/2 stand-in
(which checks every request's path, topic and JWT) for --registrations devices, over one
HTTP/2 connection at a time from one process; the stand-in runs in the same process.

Run: python tests/benchmarks/bench_apns.py [--registrations 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402


async def run(n: int) -> tuple[float, int, int, int]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.apns_peer import ApnsStandIn
    from tests.support.proc import free_port
    from wallet import apns

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = ApnsStandIn(
            directory=Path(tmp),
            topic="pass.com.example.bench",
            key_id="KEY1234567",
            team_id="TEAM123456",
            public_key=key.public_key(),
        )
        await stand_in.start(free_port())
        client = apns.Client(
            base_url=stand_in.base_url,
            token_auth=apns.TokenAuth(pem, "KEY1234567", "TEAM123456"),
            verify=str(stand_in.cert_path),
        )
        try:
            await client.push("0" * 64, "pass.com.example.bench")  # connect first
            tokens = [f"{i:064x}" for i in range(n)]
            started = time.perf_counter()
            outcomes = await client.push_all(tokens, stand_in.topic)
            elapsed = time.perf_counter() - started
        finally:
            await client.close()
            await stand_in.close()
    ok = sum(1 for o in outcomes if o.status == 200)
    return n / elapsed, ok, len(stand_in.pushes) - 1, client.reconnects


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    rate, ok, received, resent = asyncio.run(run(args.registrations))
    print()
    print(f"APNs pass-update fan-out, {args.registrations:,} registrations, one HTTP/2 connection")
    print(f"  {rate:8.0f} pushes/s; {ok:,} answered 200, {received:,} checked by the stand-in")
    print(
        f"  {resent:,} pushes sent again after the stand-in closed a connection (it does so "
        "every 1,000 requests); a push it had processed but not answered arrives twice"
    )
    figures.write(
        args.json,
        [
            figures.row(
                f"APNs pass-update fan-out, {args.registrations:,} devices ({ok:,} answered 200)",
                rate,
                "pushes/s",
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
