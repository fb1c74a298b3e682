"""RFC 5280 name constraints (4.2.1.10): DNS, email, URI, IP and directoryName subtrees.

Each CA's constraints are checked on their own against every certificate below it, which is the
same as intersecting permitted subtrees and uniting excluded ones along the path.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from certgate.certs.certinfo import CertInfo, name_key

_KINDS = (x509.DNSName, x509.RFC822Name, x509.UniformResourceIdentifier, x509.IPAddress)


def _names(info: CertInfo) -> dict[type, list[object]]:
    """The names a certificate asserts, grouped by GeneralName type."""
    out: dict[type, list[object]] = {kind: [] for kind in (*_KINDS, x509.DirectoryName)}
    if info.cert.subject.rdns:
        out[x509.DirectoryName].append(info.cert.subject)
    emails = [a.value for a in info.cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    if info.san is not None:
        for general in info.san:
            kind = type(general)
            if kind in out:
                out[kind].append(general.value)
    if not out[x509.RFC822Name]:
        out[x509.RFC822Name].extend(e for e in emails if isinstance(e, str))
    return out


def _dns_match(name: str, base: str) -> bool:
    name, base = name.lower().rstrip("."), base.lower().rstrip(".")
    if not base:
        return True
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _split_email(email: str) -> tuple[str, str] | None:
    if email.count("@") != 1:
        return None
    local, _, host = email.partition("@")
    if not local or not host:
        return None
    return local, host


def _email_match(email: str, base: str) -> bool:
    parts = _split_email(email)
    if parts is None:
        return False
    local, host = parts
    if "@" in base:
        base_parts = _split_email(base)
        return (
            base_parts is not None
            and base_parts[0] == local
            and base_parts[1].lower() == host.lower()
        )
    if base.startswith("."):
        return host.lower().endswith(base.lower())
    return host.lower() == base.lower()


def _uri_match(uri: str, base: str) -> bool:
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return False
    if not host:
        return False
    if base.startswith("."):
        return host.lower().endswith(base.lower())
    return host.lower() == base.lower()


def _ip_match(address: object, network: object) -> bool:
    if not isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return False
    return getattr(address, "version", None) == network.version and address in network


def _dn_match(subject: x509.Name, base: x509.Name) -> bool:
    subject_key, base_key = name_key(subject), name_key(base)
    return subject_key[: len(base_key)] == base_key


_MATCHERS = {
    x509.DNSName: _dns_match,
    x509.RFC822Name: _email_match,
    x509.UniformResourceIdentifier: _uri_match,
    x509.IPAddress: _ip_match,
    x509.DirectoryName: _dn_match,
}


def _well_formed(kind: type, value: object) -> bool:
    if kind is x509.RFC822Name:
        return isinstance(value, str) and _split_email(value) is not None
    return True


MAX_COMPARISONS = 1 << 20


def violation(constraints: x509.NameConstraints, info: CertInfo) -> str:
    """'' when every name of `info` satisfies `constraints`, else why not."""
    names = _names(info)
    permitted = list(constraints.permitted_subtrees or [])
    excluded = list(constraints.excluded_subtrees or [])
    total_names = sum(len(v) for v in names.values()) + (len(info.san) if info.san else 0)
    if total_names * (len(permitted) + len(excluded)) > MAX_COMPARISONS:
        return "too many names and name constraints to check"
    unsupported = {type(g) for g in permitted + excluded} - set(_MATCHERS)
    if unsupported and info.san is not None:
        for general in info.san:
            if type(general) in unsupported:
                return f"cannot check {type(general).__name__} against name constraints"
    for kind, values in names.items():
        matcher = _MATCHERS[kind]
        allowed = [g.value for g in permitted if type(g) is kind]
        denied = [g.value for g in excluded if type(g) is kind]
        if not allowed and not denied:
            continue
        for value in values:
            if not _well_formed(kind, value):
                return f"malformed {kind.__name__} {value!r} under name constraints"
            if allowed and not any(matcher(value, base) for base in allowed):
                return f"{kind.__name__} {value} is outside the permitted name constraints"
            if any(matcher(value, base) for base in denied):
                return f"{kind.__name__} {value} is excluded by name constraints"
    return ""
