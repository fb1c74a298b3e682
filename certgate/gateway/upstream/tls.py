"""Client TLS for backend connections: one pyOpenSSL context per identity, built once, and the
memory-BIO client transport (`TLSClientProtocol`) the inbound side also runs on.

An identity is (client certificate thumbprint or None, backend CA store, validateCertificateChain,
validateCertificateName). Connections are pooled per identity, so a context never changes after it
is built. The client key goes to OpenSSL in memory: it never touches a disk.

Why not stdlib `ssl` through uvloop's TLS transport: measured through the whole gateway under
keep-alive load (both gateways sharing one core, paired runs), it cost 2-5 % more CPU per
request than this transport, and it cannot take a key from memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import os
import ssl
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from certgate.gateway.openssl import ffi as _ffi
from certgate.gateway.openssl import lib as _lib
from certgate.gateway.tls import MemoryTLSProtocol, PeerCertificates

_PEM = serialization.Encoding.PEM
_SYSTEM_CAPATH = ssl.get_default_verify_paths().capath
_NAME_ERRORS = frozenset({_lib.X509_V_ERR_HOSTNAME_MISMATCH, _lib.X509_V_ERR_IP_ADDRESS_MISMATCH})


class BackendTrust:
    """The CA certificates a backend's server certificate may chain to, besides the system roots.

    `key` names the CA set (a digest of the certificates), so identities built on an unchanged
    store survive a new configuration.
    """

    __slots__ = ("certificates", "key", "use_system_roots")

    def __init__(
        self, certificates: Iterable[x509.Certificate] = (), *, use_system_roots: bool = True
    ) -> None:
        by_pem = {cert.public_bytes(_PEM): cert for cert in certificates}
        self.certificates = tuple(by_pem[pem] for pem in sorted(by_pem))
        digest = hashlib.sha256(b"".join(sorted(by_pem))).hexdigest()[:16]
        self.use_system_roots = use_system_roots
        self.key = f"{digest}{'+system' if use_system_roots else ''}"


SYSTEM_TRUST = BackendTrust()


def service_backend_trust(service_properties: Mapping[str, Any]) -> BackendTrust:
    """The backend trust of the service resource: system roots plus its `certificates[]` (Root
    and CertificateAuthority stores, base64 DER in `encodedCertificate`)."""
    certificates = [
        x509.load_der_x509_certificate(base64.b64decode(entry["encodedCertificate"]))
        for entry in service_properties.get("certificates") or ()
        if entry.get("encodedCertificate")
    ]
    return BackendTrust(certificates)


class ClientIdentity:
    """A ready client context and how the backend's name is checked.

    With validateCertificateChain on, OpenSSL checks the name during chain verification
    (`verify_name`); with it off and validateCertificateName on, `name_matches` checks the peer
    certificate after the handshake (`check_name`).
    """

    __slots__ = ("check_name", "key", "ssl_context", "thumbprint", "verify_name")

    def __init__(self, key: tuple, ssl_context: SSL.Context) -> None:
        self.key = key
        self.thumbprint: str | None = key[0]
        self.ssl_context = ssl_context
        validate_chain, validate_name = key[2], key[3]
        self.verify_name = validate_chain and validate_name
        self.check_name = validate_name and not validate_chain


def identity_key(
    material: Any, trust: BackendTrust, validate_chain: bool, validate_name: bool
) -> tuple:
    return (
        material.thumbprint if material is not None else None,
        trust.key,
        validate_chain,
        validate_name,
    )


def build_context(material: Any, trust: BackendTrust, validate_chain: bool) -> SSL.Context:
    """A TLS 1.2+ client context presenting `material` (a `CertificateMaterial`, or None)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    if validate_chain:
        context.set_verify(SSL.VERIFY_PEER)
        if trust.use_system_roots:
            if _SYSTEM_CAPATH and os.path.isdir(_SYSTEM_CAPATH):
                context.load_verify_locations(None, _SYSTEM_CAPATH)  # looked up lazily
            else:
                context.set_default_verify_paths()
        store = context.get_cert_store()
        assert store is not None  # a context always has one
        for certificate in trust.certificates:
            store.add_cert(crypto.X509.from_cryptography(certificate))
    else:
        context.set_verify(SSL.VERIFY_NONE)
    if material is not None:
        _use_client_certificate(context, material)
    context.set_alpn_protos([b"http/1.1"])
    return context


def _use_client_certificate(context: SSL.Context, material: Any) -> None:
    if material.private_key is None:
        raise ValueError(f"certificate {material.thumbprint} has no private key")
    try:
        context.use_certificate(material.certificate)
        for extra in material.chain or ():
            context.add_extra_chain_cert(extra)
        context.use_privatekey(material.private_key)
        context.check_privatekey()
    except (SSL.Error, crypto.Error, TypeError) as exc:
        raise ValueError(f"certificate {material.thumbprint}: {exc}") from None


class TLSHandshakeError(ConnectionError):
    """The TLS handshake with the backend failed; the message says why (no secrets)."""


class TLSClientProtocol(MemoryTLSProtocol):
    """TLS to a backend over memory BIOs, driving `app` once the handshake completes.

    `handshake` resolves then, or fails with `TLSHandshakeError` (the verify error or OpenSSL's
    reason) or the connection's loss.
    """

    __slots__ = ("_host", "_identity", "_pending", "handshake")

    def __init__(self, identity: ClientIdentity, host: str, app: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._identity = identity
        self._host = host
        self._pending = app
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        conn = SSL.Connection(self._identity.ssl_context, None)
        conn.set_connect_state()
        self._attach(transport, conn)
        _set_peer_name(self._ssl, self._host, self._identity.verify_name)
        self._handshake()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        reason = "connection closed during the TLS handshake"
        self._fail(TLSHandshakeError(f"{reason} ({exc})" if exc else reason))

    def _handshake_failed(self) -> None:
        self._fail(TLSHandshakeError(_failure_reason(self._ssl, self._host)))

    def _handshake_done(self) -> None:
        if self._identity.check_name:
            peer = PeerCertificates.of(self._ssl)
            if peer is None or not name_matches(peer.der, self._host):
                self._fail(TLSHandshakeError(_name_mismatch(self._host)))
                self._abort()
                return
        self._app = self._pending
        self._app.connection_made(self)
        if not self.handshake.done():
            self.handshake.set_result(None)

    def _fail(self, error: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(error)


def _set_peer_name(ssl: Any, host: str, verify: bool) -> None:
    """SNI for a DNS name; with `verify`, the name or IP address chain verification must match."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        name = host.encode("idna")
        _lib.SSL_set_tlsext_host_name(ssl, name)
    if not verify:
        return
    param = _lib.SSL_get0_param(ssl)
    if address is None:
        _lib.X509_VERIFY_PARAM_set1_host(param, name, len(name))
    else:
        packed = address.packed
        _lib.X509_VERIFY_PARAM_set1_ip(param, packed, len(packed))


def _failure_reason(ssl: Any, host: str) -> str:
    verify = _lib.SSL_get_verify_result(ssl)
    if verify in _NAME_ERRORS:
        return _name_mismatch(host)
    if verify != _lib.X509_V_OK:
        text = _ffi.string(_lib.X509_verify_cert_error_string(verify)).decode()
        return f"certificate verify failed: {text}"
    error = _lib.ERR_peek_error()
    reason = _lib.ERR_reason_error_string(error) if error else _ffi.NULL
    if reason == _ffi.NULL:
        return "TLS handshake failed"
    return f"TLS handshake failed: {_ffi.string(reason).decode()}"


def _name_mismatch(host: str) -> str:
    return f"certificate name mismatch: it is not valid for '{host}'"


class Identities:
    """Built identities by key, least recently used dropped beyond `max_size`."""

    __slots__ = ("_items", "max_size")

    def __init__(self, max_size: int = 256) -> None:
        self._items: OrderedDict[tuple, ClientIdentity] = OrderedDict()
        self.max_size = max_size

    def get(
        self, material: Any, trust: BackendTrust, validate_chain: bool, validate_name: bool
    ) -> ClientIdentity:
        key = identity_key(material, trust, validate_chain, validate_name)
        identity = self._items.get(key)
        if identity is None:
            identity = ClientIdentity(key, build_context(material, trust, validate_chain))
            self._items[key] = identity
            if len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return identity

    def retain(self, keep: Any) -> None:
        """Drop the identities `keep(key)` refuses (certificate replaced, CA store changed)."""
        for key in [key for key in self._items if not keep(key)]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)


def name_matches(der: bytes, host: str) -> bool:
    """Whether the certificate names `host` (SAN DNS/IP, else the CN), with RFC 6125 wildcards."""
    cert = x509.load_der_x509_certificate(der)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if ip is not None:
        return san is not None and ip in san.get_values_for_type(x509.IPAddress)
    names = san.get_values_for_type(x509.DNSName) if san is not None else []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    host = host.rstrip(".").lower()
    return any(_dns_match(name.rstrip(".").lower(), host) for name in names)


def _dns_match(pattern: str, host: str) -> bool:
    if not pattern.startswith("*."):
        return pattern == host
    first, _, rest = host.partition(".")
    return bool(first) and rest == pattern[2:]
