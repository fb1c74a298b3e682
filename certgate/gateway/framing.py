"""How an HTTP/1.1 response is framed (RFC 9112 6, 9.3), decided apart from any socket.

`response_framing` is the one place that says whether a response carries a body, how its end is
marked (Content-Length, chunked, or the end of the connection) and whether the connection stays
open; `H1Exchange.respond` writes what it returns. Kept pure so a table of cases tests every rule
(tests/gateway/test_framing.py), as h11 tests its own.
"""

from __future__ import annotations

import re

from certgate.httpsyntax import UnsafeHead

Framing = tuple[str, bool, bool, bool]
"""(framing header lines, send the body, chunked, keep the connection open)."""

_NO_BODY_STATUS = frozenset({204, 304})
_DIGITS = re.compile(r"[0-9]+").fullmatch


def response_framing(
    method: str,
    version: str,
    keep_alive: bool,
    status: int,
    declared: str | None,
    size: int | None,
) -> Framing:
    """The framing of one response.

    `version` is the request's HTTP version ("1.1", "1.0"), `keep_alive` whether both the client
    and the server would keep the connection, `declared` the Content-Length the response headers
    carry (None: none) and `size` the length of a body given whole (None: a stream).

    - 1xx, 204 and 304 have no body and no length; a HEAD response sends no body but the length
      the GET would have had (declared, else the whole body's);
    - a whole body is sent with its own length (a declared one cannot disagree);
    - a stream goes with its declared length, else chunked to an HTTP/1.1 client, else to the end
      of the connection (HTTP/1.0);
    - `connection: close` when the connection ends, `connection: keep-alive` for an HTTP/1.0
      client that keeps it.

    Raises UnsafeHead for a declared length that is not a decimal number.
    """
    head = method == "HEAD"
    chunked = False
    if status < 200 or status in _NO_BODY_STATUS:
        lines = ""
        body = False
    elif size is not None and (declared is None or not head):
        lines = f"content-length: {size}\r\n"
        body = not head
    elif declared is not None:
        if _DIGITS(declared) is None:
            raise UnsafeHead("the response Content-Length is not a decimal number")
        lines = f"content-length: {declared}\r\n"
        body = not head
    elif head:
        lines = ""
        body = False
    elif version == "1.1":
        lines = "transfer-encoding: chunked\r\n"
        body = chunked = True
    else:
        lines = ""
        body = True
        keep_alive = False  # the end of the body is the end of the connection
    if keep_alive:
        if version == "1.0":
            lines = "connection: keep-alive\r\n" + lines
    else:
        lines = "connection: close\r\n" + lines
    return lines, body, chunked, keep_alive
