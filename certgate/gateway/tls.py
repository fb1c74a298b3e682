"""Inbound TLS: pyOpenSSL over memory BIOs inside a plain asyncio.Protocol (DESIGN.md decision 1).

Why not the stdlib `ssl` module: it aborts the handshake on a client certificate that does not
chain to a loaded CA, and APIM's model needs policies to see any certificate. Here a verify
callback accepts every certificate (untrusted, self-signed, expired, wrong EKU); policies decide.

SNI picks the hostname binding: its server certificate and whether a client certificate is requested
(in the initial handshake only, never by renegotiation). Contexts are built once per binding when
the configuration compiles (`server_context`), never per connection.

Resumption never crosses hostname bindings. All bindings share the first context's session cache
(OpenSSL looks sessions up there, in TLS 1.2 before SNI even switches the context), and on a TLS 1.2
resumption OpenSSL reports the session's original server name, not the one the client asked for.
So the server keeps the raw ClientHello record until the handshake ends, and aborts a resumed
handshake whose requested name (read from the ClientHello) maps to another binding than the
session's (`TLSServerProtocol._handshake_done`); clients key sessions by server name, so only a
forged resumption is cut. The session id context also names the hostname (TLS 1.3 then declines
such sessions).

Session resumption uses OpenSSL's stateful session cache (also for TLS 1.3 tickets, via
`OP_NO_TICKET`), so a resumed session keeps its client certificate and chain whatever their size
(a stateless ticket cannot carry a ~64 kB+ certificate: the handshake itself would fail). The cache
is OpenSSL's default: 20,480 sessions per context, oldest evicted first (measured ~7 kB per
full mTLS handshake until that cap: well under 100 MB).

The hot path calls OpenSSL through pyOpenSSL's cffi bindings (`_lib`) with one shared read buffer:
it avoids a buffer allocation and an exception per record.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL, crypto

from certgate.certs.certinfo import CertInfo, cached_der
from certgate.gateway.openssl import ffi as _ffi
from certgate.gateway.openssl import lib as _lib
from certgate.limits import DEFAULT_LIMITS
from certgate.observe.metrics import count_handshake

ALPN_H2 = b"h2"
ALPN_HTTP1 = b"http/1.1"
_ALPN_WIRE = {ALPN_H2: ALPN_H2, ALPN_HTTP1: ALPN_HTTP1}

# ECDHE + AEAD only for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults (all AEAD).
MODERN_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

_SSL_ERROR_WANT_READ = _lib.SSL_ERROR_WANT_READ
_SSL_ERROR_WANT_WRITE = _lib.SSL_ERROR_WANT_WRITE
_SSL_ERROR_ZERO_RETURN = _lib.SSL_ERROR_ZERO_RETURN
_BUFFER_SIZE = 262144
_buffer = _ffi.new("char[]", _BUFFER_SIZE)  # ciphertext out, DER out
_buffer_view = _ffi.buffer(_buffer)
_plain = _ffi.new("char[]", _BUFFER_SIZE)  # plaintext in
_plain_view = _ffi.buffer(_plain)
_der_bio = _lib.BIO_new(_lib.BIO_s_mem())
_alpn_data = _ffi.new("unsigned char **")
_alpn_length = _ffi.new("unsigned int *")


@_ffi.callback("int (*)(int, X509_STORE_CTX *)")
def _accept_any_certificate(ok: int, store: Any) -> int:
    """The TLS layer accepts every client certificate; policies judge it (Verify(), thumbprints)."""
    return 1


class TLSConfigError(ValueError):
    """A hostname binding cannot become a TLS context (names the hostname and the reason)."""


def server_context(
    certificate: x509.Certificate,
    private_key: Any,
    chain: Iterable[x509.Certificate] = (),
    *,
    negotiate_client_certificate: bool,
    hostname: str = "default",
) -> SSL.Context:
    """Builds the server context of one hostname binding (once, when configuration compiles)."""
    if private_key is None:
        raise TLSConfigError(f"hostname {hostname!r}: the server certificate has no private key")
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(
        SSL.OP_NO_TICKET
        | SSL.OP_NO_RENEGOTIATION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_COMPRESSION
    )
    ctx.set_cipher_list(MODERN_CIPHERS)
    ctx.set_mode(_lib.SSL_MODE_RELEASE_BUFFERS)
    try:
        ctx.use_certificate(certificate)
        ctx.use_privatekey(private_key)
        for extra in chain:
            ctx.add_extra_chain_cert(extra)
        ctx.check_privatekey()
    except (SSL.Error, crypto.Error, TypeError, ValueError) as exc:
        raise TLSConfigError(
            f"hostname {hostname!r}: server certificate or key unusable ({exc})"
        ) from None
    # Resumption must never cross bindings: the id context names the binding (hostname,
    # certificate, negotiation switch); see the module docstring for the check it backs up.
    fingerprint = certificate.fingerprint(hashes.SHA256())
    binding = hostname.lower().encode() + fingerprint + bytes([negotiate_client_certificate])
    ctx.set_session_id(hashlib.sha256(binding).digest())
    ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    ctx.set_alpn_select_callback(_select_alpn)
    ctx.set_tlsext_servername_callback(_on_servername)
    mode = SSL.VERIFY_PEER if negotiate_client_certificate else SSL.VERIFY_NONE
    _lib.SSL_CTX_set_verify(ctx._context, mode, _accept_any_certificate)
    return ctx


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes | SSL._NoOverlappingProtocols:
    if ALPN_H2 in offered:
        return ALPN_H2
    if ALPN_HTTP1 in offered:
        return ALPN_HTTP1
    return SSL.NO_OVERLAPPING_PROTOCOLS


@dataclass(frozen=True, slots=True)
class TLSBinding:
    """One hostname's TLS settings, ready to serve."""

    hostname: str  # lower-case; "*.example.com" matches one label
    context: SSL.Context
    negotiate_client_certificate: bool


class SNIRouter:
    """Maps the SNI name to a binding; new connections carry it for `_on_servername`."""

    __slots__ = ("_default", "_exact", "_wildcard")

    def __init__(self, bindings: Iterable[TLSBinding], default: TLSBinding) -> None:
        self._default = default
        self._exact: dict[bytes, TLSBinding] = {}
        self._wildcard: dict[bytes, TLSBinding] = {}
        for binding in [*bindings, default]:
            name = binding.hostname.lower().encode(
                "idna" if binding.hostname.isascii() else "utf-8"
            )
            if name.startswith(b"*."):
                self._wildcard.setdefault(name[2:], binding)
            else:
                self._exact.setdefault(name, binding)

    @property
    def default(self) -> TLSBinding:
        return self._default

    def lookup(self, server_name: bytes | None) -> TLSBinding:
        if not server_name:
            return self._default
        name = server_name.lower()
        binding = self._exact.get(name)
        if binding is None:
            _, _, parent = name.partition(b".")
            binding = self._wildcard.get(parent, self._default)
        return binding

    def new_connection(self) -> SSL.Connection:
        conn = SSL.Connection(self._default.context, None)
        conn.set_app_data(self)
        conn.set_accept_state()
        return conn


def _on_servername(conn: SSL.Connection) -> None:
    """Switches the connection to its hostname's context (installed once, on every context, so
    contexts stay immutable and can outlive one configuration)."""
    router: SNIRouter = conn.get_app_data()
    binding = router.lookup(conn.get_servername())
    if binding is not router.default:
        conn.set_context(binding.context)
        mode = SSL.VERIFY_PEER if binding.negotiate_client_certificate else SSL.VERIFY_NONE
        _lib.SSL_set_verify(conn._ssl, mode, _accept_any_certificate)


def session_server_name(ssl: Any) -> bytes | None:
    """The server name the connection's session was first made under (its ASN.1 field
    `tlsext_hostname` [6]); read for resumed handshakes only."""
    session = _lib.SSL_get_session(ssl)
    if session == _ffi.NULL:
        return None
    size = _lib.i2d_SSL_SESSION(session, _ffi.NULL)
    data = _ffi.new("unsigned char[]", size)
    _lib.i2d_SSL_SESSION(session, _ffi.new("unsigned char **", data))
    der = _ffi.buffer(data, size)[:]
    _, position, end = _der_item(der, 0)  # SSL_SESSION_ASN1 ::= SEQUENCE { ... }
    while position < end:
        tag, start, stop = _der_item(der, position)
        if tag == 0xA6:  # [6] EXPLICIT OCTET STRING
            _, value, value_end = _der_item(der, start)
            return der[value:value_end]
        position = stop
    return None


def client_hello_server_name(data: bytes) -> bytes | None:
    """The host_name of the server_name extension in the ClientHello at the start of `data`
    (the raw TLS records a server received first); None when there is none or it is cut off.
    Hostile input: every length is bounded by the bytes present."""
    hello = bytearray()
    position = 0
    while position + 5 <= len(data) and data[position] == 0x16:  # handshake records
        length = int.from_bytes(data[position + 3 : position + 5], "big")
        hello += data[position + 5 : position + 5 + length]
        position += 5 + length
    if len(hello) < 4 or hello[0] != 1:  # ClientHello
        return None
    end = min(len(hello), 4 + int.from_bytes(hello[1:4], "big"))
    position = 4 + 2 + 32  # legacy_version, random
    for width in (1, 2, 1):  # session id, cipher suites, compression methods
        if position + width > end:
            return None
        position += width + int.from_bytes(hello[position : position + width], "big")
    position += 2  # extensions length
    while position + 4 <= end:
        kind = int.from_bytes(hello[position : position + 2], "big")
        size = int.from_bytes(hello[position + 2 : position + 4], "big")
        position += 4
        if kind == 0 and position + 5 <= end:  # server_name: list length, type 0, name length
            if hello[position + 2] != 0:
                return None
            length = int.from_bytes(hello[position + 3 : position + 5], "big")
            name = bytes(hello[position + 5 : min(position + 5 + length, end)])
            return name if len(name) == length else None
        position += size
    return None


def _der_item(der: bytes, position: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER item at `position` (OpenSSL's own output)."""
    tag, length = der[position], der[position + 1]
    position += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[position : position + count], "big")
        position += count
    return tag, position, position + length


class PeerCertificates:
    """The client's certificate and the chain it sent above it (issuer first), as DER.

    Parsing is left to whoever reads `leaf`/`chain` and shared per process (`cached_der`)."""

    __slots__ = ("chain_der", "der")

    def __init__(self, der: bytes, chain_der: tuple[bytes, ...] = ()) -> None:
        self.der = der
        self.chain_der = chain_der

    @property
    def leaf(self) -> CertInfo:
        return cached_der(self.der)

    @property
    def chain(self) -> tuple[CertInfo, ...]:
        return tuple(cached_der(c) for c in self.chain_der)

    @property
    def der_chain(self) -> list[bytes]:
        """Leaf first, as DER."""
        return [self.der, *self.chain_der]

    @classmethod
    def of(cls, ssl: Any) -> PeerCertificates | None:
        """What the client presented on this connection (None: no certificate)."""
        leaf = _lib.SSL_get_peer_certificate(ssl)  # a new reference (SSL_get1_peer_certificate)
        if leaf == _ffi.NULL:
            return None
        try:
            der = _der(leaf)
        finally:
            _lib.X509_free(leaf)
        stack = _lib.SSL_get_peer_cert_chain(ssl)  # borrowed
        if stack == _ffi.NULL:
            return cls(der)
        above = tuple(_der(_lib.sk_X509_value(stack, i)) for i in range(_lib.sk_X509_num(stack)))
        # Server side, OpenSSL's peer chain leaves the leaf out (a resumed session keeps both).
        if above and above[0] == der:
            above = above[1:]
        return cls(der, above)


def _der(cert: Any) -> bytes:
    """The DER of an OpenSSL `X509 *`, through one shared memory BIO (no wrapper objects)."""
    _lib.i2d_X509_bio(_der_bio, cert)
    chunks = []
    while (n := _lib.BIO_read(_der_bio, _buffer, _BUFFER_SIZE)) > 0:
        chunks.append(_buffer_view[:n])
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class MemoryTLSProtocol(asyncio.Protocol):
    """OpenSSL over memory BIOs under a TCP transport; after the handshake, plaintext goes to an
    application protocol (HTTP/1.1, HTTP/2, the upstream HTTP/1.1 client).

    To that protocol it looks like an asyncio transport (`write`, `close`, `pause_reading`, ...), so
    the HTTP layers run unchanged over plain TCP or TLS. Subclasses drive the handshake
    (`_handshake`) and set `_app` once it completes. Plaintext and ciphertext use separate shared
    buffers, so a write from inside the application's `data_received` cannot clobber what it reads.
    """

    __slots__ = (
        "_app",
        "_closed",
        "_conn",
        "_in_bio",
        "_out_bio",
        "_reading_paused",
        "_ssl",
        "_transport",
    )

    def __init__(self) -> None:
        self._app: Any = None
        self._transport: Any = None
        self._closed = False
        self._reading_paused = False

    def _attach(self, transport: Any, conn: SSL.Connection) -> None:
        self._transport = transport
        self._conn = conn
        self._ssl = conn._ssl
        self._in_bio = conn._into_ssl
        self._out_bio = conn._from_ssl

    def _handshake(self) -> None:
        ssl = self._ssl
        result = _lib.SSL_do_handshake(ssl)
        self._flush()
        if result > 0:
            self._handshake_done()
            return
        code = _lib.SSL_get_error(ssl, result)
        if code != _SSL_ERROR_WANT_READ and code != _SSL_ERROR_WANT_WRITE:
            self._handshake_failed()
            _lib.ERR_clear_error()
            self._abort()

    def _handshake_done(self) -> None:
        """Attach the application protocol (set `_app`)."""
        raise NotImplementedError

    def _handshake_failed(self) -> None:
        """Called with OpenSSL's error queue still holding the reason; the connection aborts."""

    # -- asyncio side -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        _lib.BIO_write(self._in_bio, data, len(data))
        if self._app is None:
            self._handshake_input(data)
            self._handshake()
            if self._app is None:
                return
        self._read_plaintext()

    def _handshake_input(self, data: bytes) -> None:
        """Sees the raw bytes that arrive before the handshake completes."""

    def eof_received(self) -> bool:
        if self._app is not None:
            self._app.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._app is not None:
            self._app.connection_lost(exc)
        self._app = None

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()

    # -- TLS ----------------------------------------------------------------------------------
    def _read_plaintext(self) -> None:
        """Decrypts what arrived, record by record, until the application pauses reading: the
        rest waits in OpenSSL's buffers (bounded by one socket read) until it resumes."""
        ssl = self._ssl
        while self._app is not None and not self._reading_paused:
            n = _lib.SSL_read(ssl, _plain, _BUFFER_SIZE)
            if n > 0:
                self._app.data_received(_plain_view[:n])
                if _lib.SSL_pending(ssl) or _lib.BIO_get_mem_data(self._in_bio, _ffi.NULL):
                    continue
                break  # nothing left to decrypt: skip the SSL_read that would want more
            code = _lib.SSL_get_error(ssl, n)
            if code == _SSL_ERROR_WANT_READ:
                break
            _lib.ERR_clear_error()
            if code == _SSL_ERROR_ZERO_RETURN:
                self._flush()
                self._app.eof_received()
                self.close()
            else:
                self._abort()
            break
        if _lib.BIO_get_mem_data(self._out_bio, _ffi.NULL):
            self._flush()  # what reading produced: a TLS 1.3 key update answer, an alert

    def _flush(self) -> None:
        out = self._out_bio
        transport = self._transport
        while True:
            n = _lib.BIO_read(out, _buffer, _BUFFER_SIZE)
            if n <= 0:
                return
            if transport is not None and not self._closed:
                transport.write(_buffer_view[:n])
            if n < _BUFFER_SIZE:
                return  # the BIO is empty

    def _abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    # -- transport-like side for the application protocol -------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed or not data:
            return
        total = len(data)
        # bytes go to OpenSSL as they are; anything else through a buffer
        result = _lib.SSL_write(
            self._ssl, data if type(data) is bytes else _ffi.from_buffer(data), total
        )
        if 0 < result < total:
            result = self._write_rest(data, result, total)
        if result <= 0:
            _lib.ERR_clear_error()
            self._abort()
            return
        self._flush()

    def _write_rest(self, data: bytes | bytearray | memoryview, written: int, total: int) -> int:
        """pyOpenSSL contexts enable partial writes (a record at a time): the rest, in a loop."""
        buffer = _ffi.from_buffer(data)
        while written < total:
            result = _lib.SSL_write(self._ssl, buffer + written, total - written)
            if result <= 0:
                return result
            written += result
        return written

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        if self._closed:
            return
        self._close_notify()
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def end_tls(self) -> Any:
        """Sends close_notify and stops reading and writing TLS; returns the TCP transport (None
        once closed) for a lingering close (`certgate.gateway.linger`), which drops what still
        arrives without decrypting it. `connection_lost` still reaches the application."""
        if self._closed:
            return None
        self._close_notify()
        self._closed = True
        self._reading_paused = True  # a `_read_plaintext` in progress stops here
        return self._transport

    def _close_notify(self) -> None:
        _lib.SSL_shutdown(self._ssl)
        _lib.ERR_clear_error()
        self._flush()

    def abort(self) -> None:
        self._abort()

    def is_closing(self) -> bool:
        return self._closed or self._transport is None or self._transport.is_closing()

    def pause_reading(self) -> None:
        self._reading_paused = True
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if self._transport is None or self._closed:
            return
        if self._app is not None and (
            _lib.SSL_pending(self._ssl) or _lib.BIO_get_mem_data(self._in_bio, _ffi.NULL)
        ):
            # What already arrived is decrypted first (later: never from inside the application's
            # own call); the socket is read again only once it is all taken, so ciphertext never
            # piles up in the BIO while the application takes a little at a time.
            asyncio.get_running_loop().call_soon(self._read_buffered)
        else:
            self._transport.resume_reading()

    def _read_buffered(self) -> None:
        self._read_plaintext()
        if not self._reading_paused and not self._closed and self._transport is not None:
            self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport else 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "tls":
            return self
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    @property
    def tls_version(self) -> str:
        return _ffi.string(_lib.SSL_get_version(self._ssl)).decode()

    @property
    def session_reused(self) -> bool:
        return bool(_lib.SSL_session_reused(self._ssl))


class TLSServerProtocol(MemoryTLSProtocol):
    """The gateway's TLS server: SNI picks the binding, ALPN the HTTP version; the handshake
    must finish within `handshake_timeout` seconds (`Limits.handshake_timeout`)."""

    __slots__ = (
        "_app_factory",
        "_handshake_timeout",
        "_handshake_timer",
        "_hello",
        "_router",
        "alpn",
        "binding",
        "peer",
        "server_name",
    )

    def __init__(
        self,
        router: SNIRouter,
        app_factory: Callable[[TLSServerProtocol], Any],
        handshake_timeout: float = DEFAULT_LIMITS.handshake_timeout,
    ) -> None:
        super().__init__()
        self._router = router
        self._app_factory = app_factory
        self._handshake_timeout = handshake_timeout
        self._hello = b""  # the first raw TLS record: the ClientHello
        self.alpn = ALPN_HTTP1
        self.binding: TLSBinding | None = None
        self.peer: PeerCertificates | None = None
        self.server_name: bytes | None = None  # SNI, as sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._attach(transport, self._router.new_connection())
        self._handshake_timer = asyncio.get_running_loop().call_later(
            self._handshake_timeout, self._handshake_expired
        )

    def _handshake_expired(self) -> None:
        count_handshake("timeout", "", False)
        self._abort()

    def _handshake_failed(self) -> None:
        count_handshake("failed", "", False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._handshake_timer.cancel()
        super().connection_lost(exc)

    def _handshake_input(self, data: bytes) -> None:
        """Keeps the first TLS record (the ClientHello; one record holds any practical one, and
        one that does not makes a resumption fail safe: its name reads as absent)."""
        hello = self._hello
        if len(hello) < 5 or len(hello) < 5 + int.from_bytes(hello[3:5], "big"):
            self._hello = hello + data

    def _handshake_done(self) -> None:
        ssl = self._ssl
        self._handshake_timer.cancel()
        _lib.SSL_get0_alpn_selected(ssl, _alpn_data, _alpn_length)
        if _alpn_length[0]:
            self.alpn = _ALPN_WIRE.get(_ffi.buffer(_alpn_data[0], _alpn_length[0])[:], ALPN_HTTP1)
        name = _lib.SSL_get_servername(ssl, _lib.TLSEXT_NAMETYPE_host_name)
        self.server_name = _ffi.string(name) if name != _ffi.NULL else None
        self.binding = self._router.lookup(self.server_name)
        hello, self._hello = self._hello, b""
        if _lib.SSL_session_reused(ssl):
            requested = self._router.lookup(client_hello_server_name(hello))
            if requested is not self._router.lookup(session_server_name(ssl)):
                self._abort()  # a session made under another hostname binding
                return
        self.peer = PeerCertificates.of(ssl)
        count_handshake("ok", self.tls_version, self.peer is not None)
        self._app = self._app_factory(self)
        self._app.connection_made(self)
