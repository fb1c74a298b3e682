"""pyOpenSSL's private cffi bindings, which the memory-BIO TLS transport calls directly.

`lib` and `ffi` are not pyOpenSSL's public API (pyproject.toml pins pyOpenSSL below its next major
version for that reason). Every OpenSSL symbol certgate calls is listed here and checked when this
module is imported, so a pyOpenSSL or OpenSSL build without one fails at start-up naming it,
instead of in the middle of a handshake.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import _ffi as ffi
from OpenSSL.SSL import _lib as lib

SYMBOLS = (
    "BIO_get_mem_data",
    "BIO_new",
    "BIO_read",
    "BIO_s_mem",
    "BIO_write",
    "ERR_clear_error",
    "ERR_peek_error",
    "ERR_reason_error_string",
    "SSL_CTX_set_verify",
    "SSL_ERROR_WANT_READ",
    "SSL_ERROR_WANT_WRITE",
    "SSL_ERROR_ZERO_RETURN",
    "SSL_MODE_RELEASE_BUFFERS",
    "SSL_do_handshake",
    "SSL_get0_alpn_selected",
    "SSL_get0_param",
    "SSL_get_error",
    "SSL_get_peer_cert_chain",
    "SSL_get_peer_certificate",
    "SSL_get_servername",
    "SSL_get_session",
    "SSL_get_verify_result",
    "SSL_get_version",
    "SSL_pending",
    "SSL_read",
    "SSL_session_reused",
    "SSL_set_tlsext_host_name",
    "SSL_set_verify",
    "SSL_shutdown",
    "SSL_write",
    "TLSEXT_NAMETYPE_host_name",
    "X509_VERIFY_PARAM_set1_host",
    "X509_VERIFY_PARAM_set1_ip",
    "X509_V_ERR_HOSTNAME_MISMATCH",
    "X509_V_ERR_IP_ADDRESS_MISMATCH",
    "X509_V_OK",
    "X509_free",
    "X509_verify_cert_error_string",
    "i2d_SSL_SESSION",
    "i2d_X509_bio",
    "sk_X509_num",
    "sk_X509_value",
)


def missing_symbols(bindings: Any, names: tuple[str, ...] = SYMBOLS) -> list[str]:
    return [name for name in names if not hasattr(bindings, name)]


_missing = missing_symbols(lib)
if _missing:
    raise ImportError(
        "certgate needs OpenSSL functions this pyOpenSSL build does not expose: "
        + ", ".join(_missing)
    )

__all__ = ["ffi", "lib"]
