"""Benchmark of signed Apple Wallet passes per second in one process, next to the raw
PKCS#7 detached signature alone (cryptography's pkcs7 with the same key and certificate
chain: the limit a pass build can approach) and to plain py-pkpass `Pass.create()`
(which re-reads and parses the certificate, key and WWDR certificate for every pass), in
the same run.

Run: python tests/benchmarks/bench_passes.py [--passes 1000] [--rounds 5] [--plain 100]

Builds and bare signatures are timed in alternated rounds (build, sign, build, sign...)
of --passes each; the best round of each counts. Rates are per second of this process's
CPU time (`time.process_time`), not of the wall clock: on a shared machine the wall clock
mostly measures the other processes, while the CPU a pass costs is what a quiet core
would turn into passes per second. `--wall` times with the wall clock instead.
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
    parser.add_argument("--passes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wall", action="store_true", help="time with the wall clock")
    parser.add_argument("--plain", type=int, default=100)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    from py_pkpass import models

    from wallet import passes

    clock = time.perf_counter if args.wall else time.process_time
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

    cards = [card(i) for i in range(args.passes)]
    manifests = [f'{{"pass.json": "{i:040x}"}}'.encode() for i in range(args.passes)]
    for i in range(20):
        passes.loyalty_pass(cards[i], signer)
        signer.sign(manifests[i])
    builds, signatures = [], []
    size = 0
    for _ in range(args.rounds):
        started = clock()
        for c in cards:
            size = len(passes.loyalty_pass(c, signer))
        builds.append(args.passes / (clock() - started))
        started = clock()
        for m in manifests:
            signer.sign(m)
        signatures.append(args.passes / (clock() - started))
    ours, raw = max(builds), max(signatures)

    with tempfile.TemporaryDirectory() as tmp:
        cert, key, wwdr = Path(tmp, "cert.pem"), Path(tmp, "key.pem"), Path(tmp, "wwdr.pem")
        cert.write_bytes(dev.cert_pem)
        key.write_bytes(dev.key_pem)
        wwdr.write_bytes(dev.ca_pem)
        started = clock()
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
        plain = args.plain / (clock() - started)

    print()
    print("Signed storeCard passes (RSA-2048 pass certificate, SHA-256 PKCS#7), one process")
    print(
        f"  best of {args.rounds} alternated rounds of {args.passes}, per second of "
        + ("wall-clock time:" if args.wall else "the process's CPU time:")
    )
    print(f"  gateway pass build:            {ours:8.0f} passes/s  ({size} B each)")
    print(f"  the PKCS#7 signature alone:    {raw:8.0f} signatures/s")
    print(f"  plain py-pkpass create():      {plain:8.0f} passes/s")
    print(f"  build / signature: {ours / raw:.2f}; build / plain py-pkpass: {ours / plain:.1f}x")
    print("  rounds: builds " + ", ".join(f"{r:.0f}" for r in builds))
    print("          signatures " + ", ".join(f"{r:.0f}" for r in signatures))
    figures.write(
        args.json,
        [
            figures.row(
                "signed passes per second",
                ours,
                "passes/s",
                baseline=plain,
                baseline_name="plain py-pkpass create()",
            ),
            figures.row(
                f"signed passes per second, best of {args.rounds} rounds",
                ours,
                "passes/s",
                baseline=raw,
                baseline_name="the raw PKCS#7 detached signature alone, same key and chain",
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
