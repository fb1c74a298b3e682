"""One parsed CRL with the facts revocation checking needs, computed once."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from certgate.certs.certinfo import NameKey, name_key
from certgate.certs.names import dotnet_name

KNOWN_CRL_EXTENSIONS = frozenset(
    {
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.DELTA_CRL_INDICATOR,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.FRESHEST_CRL,
    }
)
KNOWN_ENTRY_EXTENSIONS = frozenset(
    {
        CRLEntryExtensionOID.CRL_REASON,
        CRLEntryExtensionOID.INVALIDITY_DATE,
        CRLEntryExtensionOID.CERTIFICATE_ISSUER,
    }
)


class CrlLoadError(ValueError):
    """The data is not a usable CRL; the message says why."""


class Entry:
    __slots__ = ("reason", "revoked_at")

    def __init__(self, reason: x509.ReasonFlags | None, revoked_at: dt.datetime):
        self.reason = reason
        self.revoked_at = revoked_at


class CrlInfo:
    """A CRL plus its issuer key, number, scope (IDP) and a (certificate issuer, serial) index."""

    def __init__(self, crl: x509.CertificateRevocationList, source: str = ""):
        self.crl = crl
        self.source = source
        self.fingerprint = crl.fingerprint(hashes.SHA256())
        self.issuer_key: NameKey = name_key(crl.issuer)
        self.this_update = crl.last_update_utc
        self.next_update = crl.next_update_utc
        self.number: int | None = None
        self.base_number: int | None = None
        self.idp: x509.IssuingDistributionPoint | None = None
        self.aki: bytes | None = None
        self.problem = ""
        try:
            for ext in crl.extensions:
                value = ext.value
                if isinstance(value, x509.CRLNumber):
                    self.number = value.crl_number
                    if ext.critical:
                        self.problem = "the CRL number extension must not be critical"
                elif isinstance(value, x509.DeltaCRLIndicator):
                    self.base_number = value.crl_number
                elif isinstance(value, x509.IssuingDistributionPoint):
                    self.idp = value
                elif isinstance(value, x509.AuthorityKeyIdentifier):
                    self.aki = value.key_identifier
                if ext.critical and ext.oid not in KNOWN_CRL_EXTENSIONS:
                    self.problem = f"unknown critical CRL extension {ext.oid.dotted_string}"
        except (ValueError, TypeError, x509.DuplicateExtension) as exc:
            self.problem = f"malformed CRL extensions: {exc}"
        self._entries: dict[tuple[NameKey, int], Entry] | None = None

    @property
    def is_delta(self) -> bool:
        return self.base_number is not None

    @property
    def indirect(self) -> bool:
        return bool(self.idp and self.idp.indirect_crl)

    def entries(self) -> dict[tuple[NameKey, int], Entry]:
        """Revoked entries by (certificate issuer, serial); certificateIssuer carries forward."""
        if self._entries is None:
            self._entries = self._index()
        return self._entries

    def _index(self) -> dict[tuple[NameKey, int], Entry]:
        index: dict[tuple[NameKey, int], Entry] = {}
        issuer = self.issuer_key
        try:
            for revoked in self.crl:
                reason = None
                for ext in revoked.extensions:
                    value = ext.value
                    if isinstance(value, x509.CRLReason):
                        reason = value.reason
                    elif isinstance(value, x509.CertificateIssuer) and self.indirect:
                        names = [g.value for g in value if isinstance(g, x509.DirectoryName)]
                        if names:
                            issuer = name_key(names[0])
                    if ext.critical and ext.oid not in KNOWN_ENTRY_EXTENSIONS:
                        self.problem = (
                            f"unknown critical CRL entry extension {ext.oid.dotted_string}"
                        )
                index[(issuer, revoked.serial_number)] = Entry(reason, revoked.revocation_date_utc)
        except (ValueError, TypeError, x509.DuplicateExtension) as exc:
            self.problem = f"malformed CRL entries: {exc}"
        return index

    def describe(self) -> dict[str, object]:
        """The management view: issuer, thisUpdate, nextUpdate, number."""
        return {
            "issuer": dotnet_name(self.crl.issuer),
            "thisUpdate": self.this_update.isoformat().replace("+00:00", "Z"),
            "nextUpdate": self.next_update.isoformat().replace("+00:00", "Z")
            if self.next_update
            else None,
            "number": str(self.number) if self.number is not None else None,
            "deltaOf": str(self.base_number) if self.base_number is not None else None,
            "revokedCount": len(self.crl),
        }


def load_crl(data: bytes, source: str = "") -> CrlInfo:
    """Parses a PEM or DER CRL, raising `CrlLoadError` naming what is wrong."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CrlLoadError(f"not a PEM or DER X.509 CRL: {exc}") from None
    info = CrlInfo(crl, source)
    info.entries()
    if info.problem:
        raise CrlLoadError(info.problem)
    return info
