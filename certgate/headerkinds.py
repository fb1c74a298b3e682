"""What each header field is to the gateway: the one classifier of HTTP/1.1 and HTTP/2, both legs.

A field either belongs to the message (passed on as it is) or to one connection or hop: framing,
connection management, proxy credentials, what the gateway answers itself. The sets below say
which, once; the request parsers (`SPECIAL_REQUEST_HEADERS`, one dict lookup per field), the
response writers (`RESPONSE_SKIP`), the backend request writer (`REQUEST_SKIP`), the backend
response parser (`CONNECTION_SPECIFIC_BYTES`), the cache and `set-header` all read them from here.
"""

from __future__ import annotations

# About this connection only (RFC 9110 7.6.1, RFC 9112 6 and 7): HTTP/2 forbids them (RFC 9113
# 8.2.2) and a proxy never passes them on.
CONNECTION_SPECIFIC = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never passed on in either direction: the above, this hop's proxy credentials, and what the
# gateway answers itself (Expect: 100-continue; HTTP2-Settings of an h2c upgrade, not proxied).
HOP_BY_HOP = CONNECTION_SPECIFIC | {
    "proxy-authenticate",
    "proxy-authorization",
    "expect",
    "http2-settings",
}
# How a message body is delimited: the writers compute it from the body they send.
FRAMING = frozenset({"content-length", "transfer-encoding"})

RESPONSE_SKIP = HOP_BY_HOP | FRAMING
"""Response fields both protocols' writers leave out (they write their own framing)."""
REQUEST_SKIP = HOP_BY_HOP | FRAMING | {"host"}
"""Request fields the backend request writer leaves out (it writes Host and the framing)."""
CONNECTION_SPECIFIC_BYTES = frozenset(name.encode() for name in CONNECTION_SPECIFIC)
"""`CONNECTION_SPECIFIC` as the backend response parser sees names (lower-cased bytes)."""
NOT_CACHED = CONNECTION_SPECIFIC | FRAMING
"""Not stored with a cached response: about one connection, or recomputed when it is served."""
POLICY_FIXED = FRAMING | {"connection", "keep-alive"}
"""What `set-header` may not change: a policy setting them could smuggle a second message."""

# Request fields the parsers of both protocols act on while parsing (one dict lookup per field).
DROP, TRANSFER_ENCODING, EXPECT, CONNECTION, CONTENT_LENGTH, HOST, FORWARDED_FOR, FORWARDED = range(
    8
)
SPECIAL_REQUEST_HEADERS = {
    **dict.fromkeys(HOP_BY_HOP, DROP),
    "transfer-encoding": TRANSFER_ENCODING,
    "expect": EXPECT,
    "connection": CONNECTION,
    "content-length": CONTENT_LENGTH,
    "host": HOST,
    "x-forwarded-for": FORWARDED_FOR,
    "x-forwarded-proto": FORWARDED,  # set by the gateway, never taken from the client
    "x-forwarded-host": FORWARDED,
    # RFC 9440: only the gateway may assert a client certificate, never the client itself.
    "client-cert": DROP,
    "client-cert-chain": DROP,
}
