"""The `certificateRevocationLists/{crlId}` kind (certgate extension): operator-uploaded CRLs.

PUT `{"properties": {"data": "<base64 of a DER or PEM CRL, or the PEM text>"}}`. The CRL is parsed
and checked (no unknown critical extension, and, when a CA certificate of the service carries the
CRL's issuer name, its signature and that CA's cRLSign key usage). A CRL without a CRL number is
accepted, as OpenSSL does (`openssl ca -gencrl` makes one unless a crlnumber file is set). Stored:
the CRL as base64 DER plus `issuer`, `thisUpdate`, `nextUpdate`, `number`, `deltaOf`,
`revokedCount`;
GET shows everything except `data`.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certgate.certs.certinfo import name_key, verify_signature
from certgate.certs.crlinfo import CrlInfo, CrlLoadError, load_crl
from certgate.config.store import Resource
from certgate.management.errors import ValidationError
from certgate.management.kinds import Kind, Validated, WriteRequest, register


def _decode(value: object) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("'data' is required: a base64 DER or PEM CRL.", "data")
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("'data' is not valid base64.", "data") from None


def _check_signature(info: CrlInfo, request: WriteRequest) -> None:
    service = request.store.get("service")
    cas = []
    for entry in (service.properties.get("certificates") if service else None) or ():
        cert = x509.load_der_x509_certificate(base64.b64decode(entry["encodedCertificate"]))
        if name_key(cert.subject) == info.issuer_key:
            cas.append(cert)
    if not cas:
        return
    for ca in cas:
        try:
            usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
            if not usage.crl_sign:
                continue
        except x509.ExtensionNotFound:
            pass
        crl = info.crl
        if verify_signature(ca.public_key(), crl.signature, crl.tbs_certlist_bytes, crl):
            return
    raise ValidationError(
        "'data': the CRL's signature does not verify with the service's CA certificate "
        f"'{info.describe()['issuer']}' (or that CA lacks the cRLSign key usage).",
        "data",
    )


def validate(request: WriteRequest) -> Validated:
    data = _decode(request.properties.get("data"))
    try:
        info = load_crl(data)
    except CrlLoadError as exc:
        raise ValidationError(f"'data': {exc}", "data") from None
    _check_signature(info, request)
    der = info.crl.public_bytes(Encoding.DER)
    return Validated({"data": base64.b64encode(der).decode(), **info.describe()})


def present(resource: Resource) -> dict:
    return {k: v for k, v in resource.properties.items() if k != "data"}


CERTIFICATE_REVOCATION_LISTS = register(
    Kind(
        name="certificateRevocationList",
        title="CertificateRevocationList",
        pattern="certificateRevocationLists/{crlId}",
        arm_type="Microsoft.ApiManagement/service/certificateRevocationLists",
        validate=validate,
        present=present,
        filter_fields={"name": "string", "issuer": "string", "nextUpdate": "datetime"},
        schema={
            "type": "object",
            "properties": {
                "data": {"type": "string", "description": "base64 DER or PEM CRL (write only)"},
                "issuer": {"type": "string", "readOnly": True},
                "thisUpdate": {"type": "string", "readOnly": True},
                "nextUpdate": {"type": "string", "readOnly": True},
                "number": {"type": "string", "readOnly": True},
                "revokedCount": {"type": "integer", "readOnly": True},
            },
        },
        description="Certificate revocation lists uploaded by the operator (certgate extension)",
    )
)
