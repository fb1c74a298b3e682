"""Every certificate the configuration uses, with its expiry: for the
`certgate_certificate_not_after_seconds` gauge and the expiry warnings.

Read from the store's public properties only (nothing unsealed): stored certificates (uploaded or
from a key vault), the service's CA certificates, the certificate of each hostname binding, the
client certificates of backends, and the development server certificate (the default binding).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily

from certgate.armnames import ArmNames
from certgate.certs.material import load_certificate
from certgate.certs.stored import certificate_path
from certgate.config.store import Store

NOT_AFTER = "certgate_certificate_not_after_seconds"


@dataclass(frozen=True)
class InUse:
    """One use of one certificate. `kind`: certificate, ca, hostname, backend; `source`: upload,
    keyVault, development."""

    kind: str
    id: str
    thumbprint: str
    source: str
    not_after: dt.datetime
    subject: str = ""


def certificates_in_use(store: Store, dev_server_pem: bytes | None = None) -> list[InUse]:
    rows = store.list()
    stored: dict[str, InUse] = {}
    for row in rows:
        if row.kind != "certificate":
            continue
        properties = row.properties
        not_after = _time(properties.get("expirationDate"))
        if not_after is None:
            continue
        source = "keyVault" if properties.get("keyVault") else "upload"
        stored[row.name] = InUse(
            "certificate",
            row.name,
            str(properties.get("thumbprint", "")),
            source,
            not_after,
            str(properties.get("subject", "")),
        )
    by_name = ArmNames(stored)  # references may spell a certificate's id in another case
    found = list(stored.values())
    by_thumbprint = {c.thumbprint: c for c in found}
    service = next((r.properties for r in rows if r.kind == "service"), {})
    for entry in service.get("certificates") or ():
        info = entry.get("certificate") or {}
        not_after = _time(info.get("expiry"))
        if not_after is not None:
            thumbprint = str(info.get("thumbprint", ""))
            found.append(
                InUse(
                    "ca",
                    str(entry.get("storeName", "")),
                    thumbprint,
                    "upload",
                    not_after,
                    str(info.get("subject", "")),
                )
            )
    for entry in service.get("hostnameConfigurations") or ():
        reference = entry.get("certificateId")
        if reference:
            used = by_name.get(certificate_path(reference).split("/", 1)[1])
            if used is not None:
                found.append(_use(used, "hostname", str(entry.get("hostName", ""))))
    for row in rows:
        if row.kind != "backend":
            continue
        credentials = row.properties.get("credentials") or {}
        for reference in credentials.get("certificateIds") or ():
            used = by_name.get(certificate_path(reference).split("/", 1)[1])
            if used is not None:
                found.append(_use(used, "backend", row.name))
        for thumbprint in credentials.get("certificate") or ():
            used = by_thumbprint.get(str(thumbprint).upper())
            if used is not None:
                found.append(_use(used, "backend", row.name))
    if dev_server_pem is not None:
        dev = load_certificate(dev_server_pem, None)
        found.append(InUse("hostname", "development", dev.thumbprint, "development", dev.not_after))
    return found


class CertificateCollector:
    """Computes `certgate_certificate_not_after_seconds` from the store at each scrape."""

    def __init__(self, store: Store, dev_server_pem: bytes | None = None) -> None:
        self._store = store
        self._dev = dev_server_pem

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            NOT_AFTER,
            "Expiry (notAfter) of each certificate in use, as a Unix time",
            labels=("id", "thumbprint", "kind", "source"),
        )
        for use in certificates_in_use(self._store, self._dev):
            family.add_metric(
                (use.id, use.thumbprint, use.kind, use.source), use.not_after.timestamp()
            )
        yield family


def _use(certificate: InUse, kind: str, id: str) -> InUse:
    return InUse(
        kind,
        id,
        certificate.thumbprint,
        certificate.source,
        certificate.not_after,
        certificate.subject,
    )


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
