"""Apple Wallet passes: built with py-pkpass's models, signed with keys loaded once.

py-pkpass re-reads and parses the certificate, key and WWDR certificate for every
pass; that parse is nearly the whole cost of a pass. `Signer` loads them once per
process, and the archive is zipped here from entries made once for the images, so the
signature is most of what a pass costs. The signature is a detached PKCS#7 (CMS)
SignedData over manifest.json with SHA-256, a signingTime attribute and the WWDR
certificate included, made in binary mode so the manifest's bytes are signed exactly as
they are in the archive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from py_pkpass import models

MAX_LOCATIONS = 10
DEV_LABEL = "NOT VALID ON APPLE DEVICES - gateway dev certificate"


def new_auth_token() -> str:
    """The pass's web-service token: random, well over Apple's 16-character minimum."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Signer:
    """The pass certificate, its key and the WWDR certificate, parsed once."""

    certificate: x509.Certificate
    key: Any  # an RSA or EC private key
    wwdr: x509.Certificate

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, wwdr_pem: bytes) -> Signer:
        return cls(
            certificate=x509.load_pem_x509_certificate(cert_pem),
            key=serialization.load_pem_private_key(key_pem, password=None),
            wwdr=x509.load_pem_x509_certificate(wwdr_pem),
        )

    def check(self) -> None:
        """Raise ValueError unless the key is the certificate's and WWDR issued it."""
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        certified = self.certificate.public_key().public_bytes(*spki)
        if certified != self.key.public_key().public_bytes(*spki):
            raise ValueError("the private key does not belong to the pass certificate")
        if self.certificate.issuer != self.wwdr.subject:
            raise ValueError("the pass certificate was not issued by this WWDR certificate")

    def sign(self, manifest: bytes) -> bytes:
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(manifest)
            .add_signer(self.certificate, self.key, hashes.SHA256())
            .add_certificate(self.wwdr)
            .sign(
                serialization.Encoding.DER,
                [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
            )
        )


def _png(size: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain square PNG (Apple requires icon.png in every pass)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    raw = zlib.compress(row * size)
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


ICON = _png(29, (111, 78, 55))
ICON_2X = _png(58, (111, 78, 55))


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceNearby:
    lat: float
    lon: float
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoyaltyCard:
    pass_type_id: str
    team_id: str
    organization: str
    serial: str
    auth_token: str
    web_service_url: str
    member_name: str | None
    member_code: str
    points: int
    tier: str | None
    places: Sequence[PlaceNearby] = field(default_factory=tuple)
    max_distance_m: int = 200
    # The shopper's shareable referral code, as people read it (a back field).
    referral_code: str | None = None


def _field(key: str, value: Any, label: str, change: str | None = None) -> models.Field:
    f = models.Field(key, value, label)
    if change:
        # Shown on the lock screen when the value changes; %@ is the new value.
        f.changeMessage = change
    return f


def _locations(places: Sequence[PlaceNearby]) -> list[models.Location]:
    out = []
    for p in list(places)[:MAX_LOCATIONS]:
        loc = models.Location(p.lat, p.lon)
        loc.relevantText = p.text
        out.append(loc)
    return out


# A fixed date for every zip entry (1 January 2020, 00:00, MS-DOS format): a pass's bytes
# depend only on its content and signature, never on when it was zipped.
_DOS_TIME, _DOS_DATE = 0, (2020 - 1980) << 9 | 1 << 5 | 1


@dataclass(frozen=True, slots=True)
class _Entry:
    """One zip member, made once: its local header and data, and its central record."""

    name: bytes
    local: bytes  # local file header + (compressed) data
    central: bytes  # central directory record, without the trailing offset and name

    @classmethod
    def make(cls, name: str, data: bytes, *, deflate: bool, level: int = 1) -> _Entry:
        raw = zlib.compress(data, level, -15) if deflate else data
        encoded = name.encode()
        fields = (
            20,  # version needed: 2.0
            0,  # flags
            8 if deflate else 0,
            _DOS_TIME,
            _DOS_DATE,
            zlib.crc32(data),
            len(raw),
            len(data),
            len(encoded),
            0,  # extra field length
        )
        local = struct.pack("<I5H3I2H", 0x04034B50, *fields) + encoded + raw
        central = struct.pack("<IH5H3I5HI", 0x02014B50, 20, *fields, 0, 0, 0, 0o644 << 16)
        return cls(name=encoded, local=local, central=central)


def _zip(entries: Sequence[_Entry]) -> bytes:
    """A zip archive of ready entries: only offsets are computed here."""
    out, directory, offset = [], [], 0
    for e in entries:
        out.append(e.local)
        directory.append(e.central + struct.pack("<I", offset) + e.name)
        offset += len(e.local)
    central = b"".join(directory)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), offset, 0
    )
    return b"".join(out) + central + end


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


# Images are the same in every pass: their zip entries and manifest digests are made once.
_IMAGES = {"icon.png": ICON, "icon@2x.png": ICON_2X}
_IMAGE_ENTRIES = tuple(_Entry.make(n, d, deflate=True, level=9) for n, d in _IMAGES.items())
_IMAGE_DIGESTS = {name: _sha1(data) for name, data in _IMAGES.items()}


def _archive(card: models.Pass, signer: Signer, extra: dict[str, Any] | None = None) -> bytes:
    """pass.json, the images, manifest.json and the signature, zipped.

    Everything but the signature costs little next to it: the images' entries and
    digests are made once, the JSON is written by orjson, and the members made per
    pass are stored, not deflated (pass.json is a few kilobytes).
    """
    # Keys py-pkpass's model does not know (maxDistance) are added to its JSON.
    pass_json = orjson.dumps({**card.json_dict(), **(extra or {})}, default=models.PassHandler)
    # The manifest format Apple defines lists SHA-1 digests; the signature over it is SHA-256.
    manifest = orjson.dumps({"pass.json": _sha1(pass_json), **_IMAGE_DIGESTS})
    signature = signer.sign(manifest)
    return _zip(
        (
            _Entry.make("pass.json", pass_json, deflate=False),
            *_IMAGE_ENTRIES,
            _Entry.make("manifest.json", manifest, deflate=False),
            _Entry.make("signature", signature, deflate=False),
        )
    )


def _pass(
    info: models.PassInformation,
    card: LoyaltyCard | CouponCard,
    *,
    description: str,
    barcode: models.Barcode,
    extra: dict[str, Any],
) -> models.Pass:
    """The pass.json fields every pass has: identity, web service, barcode and locations.

    A pass with locations gets its maxDistance added to ``extra`` (the keys py-pkpass's
    model does not know).
    """
    p = models.Pass(
        info,
        passTypeIdentifier=card.pass_type_id,
        organizationName=card.organization,
        teamIdentifier=card.team_id,
    )
    p.serialNumber = card.serial
    p.description = description
    p.authenticationToken = card.auth_token
    p.webServiceURL = card.web_service_url
    p.barcode = barcode
    locations = _locations(card.places)
    if locations:
        p.locations = locations
        extra["maxDistance"] = card.max_distance_m
    return p


def loyalty_pass(card: LoyaltyCard, signer: Signer) -> bytes:
    """The shopper's storeCard: points and tier (with change messages) and member barcode."""
    info = models.StoreCard()
    info.headerFields.append(_field("tier", card.tier or "Member", "TIER", "You are now %@"))
    info.primaryFields.append(_field("points", card.points, "POINTS", "You now have %@ points"))
    if card.member_name:
        info.secondaryFields.append(_field("member", card.member_name, "MEMBER"))
    info.backFields.append(_field("code", card.member_code, "Member number"))
    if card.referral_code:
        info.backFields.append(
            _field("referral", card.referral_code, "Invite a friend: your referral code")
        )
    barcode = models.Barcode(
        message=card.member_code, format=models.BarcodeFormat.QR, altText=card.member_code
    )
    extra: dict[str, Any] = {}
    p = _pass(
        info,
        card,
        description=f"{card.organization} loyalty card",
        barcode=barcode,
        extra=extra,
    )
    return _archive(p, signer, extra)


# -- development certificates ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DevCertificates:
    ca_pem: bytes  # stands in for Apple's WWDR certificate
    cert_pem: bytes
    key_pem: bytes


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    issuer_key: Any,
    *,
    days: int,
    ca: bool,
) -> x509.Certificate:
    """A certificate valid from yesterday for ``days``, signed by ``issuer_key``."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def dev_certificates(pass_type_id: str, team_id: str) -> DevCertificates:
    """A throwaway CA and a pass certificate it signed, for development and tests.

    Both say in their names that they are not valid on Apple devices: a device only
    accepts passes signed through Apple's WWDR chain.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Gateway development CA"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEV_LABEL),
        ]
    )
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, days=3650, ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, pass_type_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_LABEL),
        ]
    )
    cert = _certificate(subject, ca_name, key.public_key(), ca_key, days=825, ca=False)
    return DevCertificates(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponCard:
    pass_type_id: str
    team_id: str
    organization: str
    serial: str
    auth_token: str
    web_service_url: str
    title: str
    discount: str
    code: str
    barcode_format: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    redeemed: bool
    places: Sequence[PlaceNearby] = field(default_factory=tuple)
    max_distance_m: int = 200


_FORMATS = {
    "qr": models.BarcodeFormat.QR,
    "pdf417": models.BarcodeFormat.PDF417,
    "aztec": models.BarcodeFormat.AZTEC,
    "code128": models.BarcodeFormat.CODE128,
}


def coupon_pass(card: CouponCard, signer: Signer) -> bytes:
    """A coupon pass: expires with the coupon, voided once redeemed, relevant near its stores."""
    info = models.Coupon()
    info.primaryFields.append(_field("offer", card.discount, card.title))
    info.secondaryFields.append(_field("expires", card.expires_at.isoformat(), "VALID UNTIL"))
    info.auxiliaryFields.append(
        _field("status", "Redeemed" if card.redeemed else "Ready", "STATUS", "Coupon %@")
    )
    info.backFields.append(_field("code", card.code, "Code"))
    barcode = models.Barcode(
        message=card.code,
        format=_FORMATS.get(card.barcode_format, models.BarcodeFormat.QR),
        altText=card.code,
    )
    extra: dict[str, Any] = {"expirationDate": card.expires_at.isoformat()}
    if card.redeemed:
        extra["voided"] = True
    p = _pass(
        info,
        card,
        description=f"{card.organization}: {card.title}",
        barcode=barcode,
        extra=extra,
    )
    p.relevantDate = card.issued_at.isoformat()
    return _archive(p, signer, extra)
