"""Benchmark of signed Apple Wallet passes per second in one process, next to plain
py-pkpass `Pass.create()` (which re-reads and parses the certificate, key and WWDR
certificate for every pass) in the same run.

Run: python tests/benchmarks/bench_passes.py [--passes 2000] [--plain 100]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import figures  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=2000)
    parser.add_argument("--plain", type=int, default=100)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    from py_pkpass import models

    from wallet import passes

    dev = passes.dev_certificates("pass.com.example.bench", "TEAM123456")
    signer = passes.Signer.from_pem(dev.cert_pem, dev.key_pem, dev.ca_pem)
    places = [passes.PlaceNearby(lat=48.8, lon=2.3, text="Near a store") for _ in range(10)]

    def card(i: int) -> passes.LoyaltyCard:
        return passes.LoyaltyCard(
            pass_type_id="pass.com.example.bench",
            team_id="TEAM123456",
            organization="Bench Coffee",
            serial=f"loyalty-{i}",
            auth_token=passes.new_auth_token(),
            web_service_url="https://gw.example/wallet",
            member_name="Ada",
            member_code=f"M-{i:08d}",
            points=i,
            tier="Gold",
            places=places,
        )

    for i in range(20):
        passes.loyalty_pass(card(i), signer)
    started = time.perf_counter()
    size = 0
    for i in range(args.passes):
        size += len(passes.loyalty_pass(card(i), signer))
    ours = args.passes / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        cert, key, wwdr = Path(tmp, "cert.pem"), Path(tmp, "key.pem"), Path(tmp, "wwdr.pem")
        cert.write_bytes(dev.cert_pem)
        key.write_bytes(dev.key_pem)
        wwdr.write_bytes(dev.ca_pem)
        started = time.perf_counter()
        for i in range(args.plain):
            info = models.StoreCard()
            info.addPrimaryField("points", i, "POINTS")
            p = models.Pass(
                info,
                passTypeIdentifier="pass.com.example.bench",
                organizationName="Bench Coffee",
                teamIdentifier="TEAM123456",
            )
            p.serialNumber = f"plain-{i}"
            p.description = "bench"
            p.barcode = models.Barcode(message=f"M-{i:08d}", format=models.BarcodeFormat.QR)
            p.addFile("icon.png", io.BytesIO(passes.ICON))
            p.create(str(cert), str(key), str(wwdr), "")
        plain = args.plain / (time.perf_counter() - started)

    print()
    print("Signed storeCard passes (RSA-2048 pass certificate, SHA-256 PKCS#7), one process")
    print(
        f"  gateway (keys loaded once):   {ours:8.0f} passes/s  ({size / args.passes:.0f} B each)"
    )
    print(f"  plain py-pkpass create():     {plain:8.0f} passes/s")
    print(f"  ratio: {ours / plain:.1f}x")
    figures.write(
        args.json,
        [
            figures.row(
                "signed passes per second",
                ours,
                "passes/s",
                baseline=plain,
                baseline_name="plain py-pkpass create()",
            )
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
