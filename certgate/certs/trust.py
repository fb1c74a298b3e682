"""From stored configuration to a `Verifier`: what the Snapshot compiler (and tests) call.

`service_properties` is the stored service resource: `certificates[]` (`storeName` Root or
CertificateAuthority, `encodedCertificate` base64 DER) and `clientCertificateTrust`
(`useSystemRoots`, default true; `requireRevocationInformation`, default false;
`extendedKeyUsages`, optional list of EKU OIDs; absent or `[]` = not checked, as APIM).
`gateway_authorities` are the node's own gateway CAs (`gateways/{id}/certificateAuthorities`):
(certificate, isTrusted) pairs, added to the service's as roots (trusted) or intermediates.
`crl_properties` are the stored `certificateRevocationLists/*` properties (`data`: base64 DER).
`fetcher` is the process-wide `CrlFetcher` so downloaded CRLs survive Snapshot rebuilds; `limits`
are the process's data-plane limits (chain depth, verdict cache).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping

from cryptography import x509

from certgate.certs.crl import CrlFetcher, CrlStore
from certgate.certs.crlinfo import CrlInfo
from certgate.certs.verify import TrustStore, Verifier
from certgate.limits import DEFAULT_LIMITS, Limits


def build_verifier(
    service_properties: Mapping,
    crl_properties: Iterable[Mapping] = (),
    *,
    gateway_authorities: Iterable[tuple[x509.Certificate, bool]] = (),
    fetcher: CrlFetcher | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Verifier:
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    authorities = list(gateway_authorities)
    for cert, trusted in authorities:
        (roots if trusted else intermediates).append(cert)
    # As APIM: a self-hosted gateway with certificate authorities of its own trusts those, the
    # service's CA certificates being the managed gateway's; a node without any keeps the service's.
    for entry in () if authorities else service_properties.get("certificates") or ():
        cert = x509.load_der_x509_certificate(base64.b64decode(entry["encodedCertificate"]))
        (roots if entry.get("storeName") == "Root" else intermediates).append(cert)
    settings = service_properties.get("clientCertificateTrust") or {}
    usages = settings.get("extendedKeyUsages")
    trust = TrustStore(
        roots,
        intermediates,
        use_system_roots=settings.get("useSystemRoots", True),
        require_revocation_information=settings.get("requireRevocationInformation", False),
        extended_key_usages=[x509.ObjectIdentifier(o) for o in usages or ()],
    )
    crls = [CrlInfo(x509.load_der_x509_crl(base64.b64decode(p["data"]))) for p in crl_properties]
    return Verifier(trust, CrlStore(crls, fetcher), limits=limits)
