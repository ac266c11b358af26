"""Reading a .pkpass in tests: its files, and its signature checked by `openssl cms -verify`
against the certificate authority that issued the signing certificate."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

from wallet import passes


def unpack(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def verify(files: dict[str, bytes], dev: passes.DevCertificates, tmp: Path) -> str:
    (tmp / "manifest.json").write_bytes(files["manifest.json"])
    (tmp / "signature").write_bytes(files["signature"])
    (tmp / "ca.pem").write_bytes(dev.ca_pem)
    out = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp / "signature"),
            "-content",
            str(tmp / "manifest.json"),
            "-CAfile",
            str(tmp / "ca.pem"),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stderr
