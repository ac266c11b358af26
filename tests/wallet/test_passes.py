"""Signed passes: the signature verifies with `openssl cms -verify -binary` against the test
CA, the manifest's hashes match the files, and pass.json follows the field rules."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.pkpass import unpack, verify
from wallet import passes

PASS_TYPE = "pass.com.example.loyalty"


@pytest.fixture(scope="module")
def dev() -> passes.DevCertificates:
    return passes.dev_certificates(PASS_TYPE, "TEAM123456")


def card(**kw: object) -> passes.LoyaltyCard:
    base: dict[str, object] = {
        "pass_type_id": PASS_TYPE,
        "team_id": "TEAM123456",
        "organization": "Corner Coffee",
        "serial": "loyalty-42",
        "auth_token": passes.new_auth_token(),
        "web_service_url": "https://gw.example/wallet",
        "member_name": "Ada",
        "member_code": "M-000042",
        "points": 120,
        "tier": "Silver",
        "places": [
            passes.PlaceNearby(lat=48.86 + i / 100, lon=2.33, text=f"Store {i} is near")
            for i in range(12)
        ],
    }
    base.update(kw)
    return passes.LoyaltyCard(**base)  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_loyalty_pass_is_signed_and_verifies(dev: passes.DevCertificates, tmp_path: Path) -> None:
    signer = passes.Signer.from_pem(dev.cert_pem, dev.key_pem, dev.ca_pem)
    files = unpack(passes.loyalty_pass(card(), signer))
    assert "Verification successful" in verify(files, dev, tmp_path)
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest
    # The signature carries a signing time and the WWDR (here: test CA) certificate.
    printed = subprocess.run(
        [
            "openssl",
            "cms",
            "-cmsout",
            "-print",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "signature"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "signingTime" in printed
    assert "Gateway development CA" in printed
    assert "sha256" in printed.lower()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_tampered_manifest_fails_verification(
    dev: passes.DevCertificates, tmp_path: Path
) -> None:
    signer = passes.Signer.from_pem(dev.cert_pem, dev.key_pem, dev.ca_pem)
    files = unpack(passes.loyalty_pass(card(), signer))
    files["manifest.json"] = files["manifest.json"].replace(b"{", b"{ ", 1)
    with pytest.raises(AssertionError):
        verify(files, dev, tmp_path)


def test_pass_json_follows_the_field_rules(dev: passes.DevCertificates) -> None:
    signer = passes.Signer.from_pem(dev.cert_pem, dev.key_pem, dev.ca_pem)
    c = card()
    body = json.loads(unpack(passes.loyalty_pass(c, signer))["pass.json"])
    assert body["serialNumber"] == "loyalty-42" and body["authenticationToken"] == c.auth_token
    assert len(body["authenticationToken"]) >= 16
    assert body["webServiceURL"] == "https://gw.example/wallet"
    card_fields = body["storeCard"]
    points = card_fields["primaryFields"][0]
    assert (points["key"], points["value"]) == ("points", 120)
    assert "%@" in points["changeMessage"]
    assert "%@" in card_fields["headerFields"][0]["changeMessage"]
    assert len(body["locations"]) == passes.MAX_LOCATIONS
    assert all(loc["relevantText"] for loc in body["locations"])
    assert body["maxDistance"] == 200
    assert body["barcode"]["message"] == "M-000042"


def test_dev_certificates_say_they_are_not_for_apple_devices(
    dev: passes.DevCertificates,
) -> None:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(dev.cert_pem)
    ca = x509.load_pem_x509_certificate(dev.ca_pem)
    assert passes.DEV_LABEL in cert.subject.rfc4514_string()
    assert passes.DEV_LABEL in ca.subject.rfc4514_string()
    assert cert.issuer == ca.subject
