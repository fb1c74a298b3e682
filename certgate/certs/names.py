"""Distinguished names rendered the way .NET's `X500DistinguishedName.Name` renders them.

APIM policies compare `context.Request.Certificate.Subject` with literal strings written against
.NET's output, so the rendering must match it byte for byte: RDNs in reverse order (most specific
first) joined by ", ", multi-valued RDNs joined by " + ", the short names Windows knows (`CN`, `O`,
`S`, `E`, `SERIALNUMBER`...), `OID.x.y.z` for the others, and values quoted with `"` (inner `"`
doubled) when they are empty, start or end with whitespace, or contain one of `,+="\\n<>#;`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

SHORT_NAMES: dict[ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.TITLE: "T",
    NameOID.GIVEN_NAME: "G",
    NameOID.SURNAME: "SN",
    NameOID.INITIALS: "I",
    NameOID.POSTAL_CODE: "PostalCode",
    NameOID.DN_QUALIFIER: "DnQualifier",
    NameOID.USER_ID: "UID",
    ObjectIdentifier("2.5.4.13"): "Description",
    ObjectIdentifier("2.5.4.18"): "POBox",
    ObjectIdentifier("2.5.4.20"): "Phone",
}
_SPECIAL = frozenset(',+="\n<>#;')
_EDGE_SPACE = frozenset(" \t\n\r")


def _quote(value: str) -> str:
    needs = (
        not value
        or value[0] in _EDGE_SPACE
        or value[-1] in _EDGE_SPACE
        or any(c in _SPECIAL for c in value)
    )
    return '"' + value.replace('"', '""') + '"' if needs else value


def _attribute(attr: x509.NameAttribute) -> str:
    key = SHORT_NAMES.get(attr.oid, f"OID.{attr.oid.dotted_string}")
    value = attr.value
    if isinstance(value, bytes):
        return f"{key}=#{value.hex().upper()}"
    return f"{key}={_quote(value)}"


def dotnet_name(name: x509.Name) -> str:
    """`X500DistinguishedName.Name` for `name` (e.g. `CN=client, O="Contoso, Inc.", C=US`)."""
    return ", ".join(" + ".join(_attribute(a) for a in rdn) for rdn in reversed(list(name.rdns)))


def attribute_values(name: x509.Name, oid: ObjectIdentifier) -> list[str]:
    """String values of one attribute type, most specific RDN first (as .NET searches them)."""
    return [
        a.value
        for rdn in reversed(list(name.rdns))
        for a in rdn
        if a.oid == oid and isinstance(a.value, str)
    ]
