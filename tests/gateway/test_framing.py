"""HTTP/1.1 response framing as a table, without sockets (h11's way): every rule of
`response_framing`, one row each."""

from __future__ import annotations

import pytest

from certgate.gateway.framing import response_framing
from certgate.httpsyntax import UnsafeHead

CLOSE = "connection: close\r\n"
KEEP = "connection: keep-alive\r\n"
CHUNKED = "transfer-encoding: chunked\r\n"


def length(n: int | str) -> str:
    return f"content-length: {n}\r\n"


# method, version, keep-alive wish, status, declared length, whole body size (None: a stream)
#   -> framing lines, send the body, chunked, keep the connection
CASES = [
    # the common case: a keep-alive HTTP/1.1 GET with a whole body
    (("GET", "1.1", True, 200, None, 5), (length(5), True, False, True)),
    (("GET", "1.1", True, 200, "99", 5), (length(5), True, False, True)),  # its own length wins
    (("GET", "1.1", True, 200, None, 0), (length(0), True, False, True)),
    (("POST", "1.1", False, 201, None, 2), (CLOSE + length(2), True, False, False)),
    # streams: a declared length, else chunked (1.1) or the end of the connection (1.0)
    (("GET", "1.1", True, 200, "10", None), (length(10), True, False, True)),
    (("GET", "1.1", True, 200, None, None), (CHUNKED, True, True, True)),
    (("GET", "1.1", False, 200, None, None), (CLOSE + CHUNKED, True, True, False)),
    (("GET", "1.0", True, 200, None, None), (CLOSE, True, False, False)),
    (("GET", "1.0", False, 200, None, None), (CLOSE, True, False, False)),
    (("GET", "1.0", True, 200, "10", None), (KEEP + length(10), True, False, True)),
    # HTTP/1.0 clients that keep the connection are told so
    (("GET", "1.0", True, 200, None, 3), (KEEP + length(3), True, False, True)),
    (("GET", "1.0", False, 200, None, 3), (CLOSE + length(3), True, False, False)),
    # HEAD: no body, the length a GET would have had
    (("HEAD", "1.1", True, 200, "10", None), (length(10), False, False, True)),
    (("HEAD", "1.1", True, 200, None, None), ("", False, False, True)),
    (("HEAD", "1.1", True, 200, "10", 0), (length(10), False, False, True)),
    (("HEAD", "1.1", True, 200, None, 4), (length(4), False, False, True)),
    (("HEAD", "1.0", True, 200, None, None), (KEEP, False, False, True)),
    (("HEAD", "1.0", False, 200, "7", None), (CLOSE + length(7), False, False, False)),
    # 204, 304 and 1xx: no body and no length, whatever the headers say
    (("GET", "1.1", True, 204, None, 0), ("", False, False, True)),
    (("GET", "1.1", True, 204, "5", None), ("", False, False, True)),
    (("GET", "1.1", True, 304, "5", 5), ("", False, False, True)),
    (("GET", "1.1", True, 304, None, None), ("", False, False, True)),
    (("GET", "1.0", True, 304, None, None), (KEEP, False, False, True)),
    (("GET", "1.1", False, 204, None, None), (CLOSE, False, False, False)),
    (("GET", "1.1", True, 101, None, None), ("", False, False, True)),
    (("GET", "1.1", True, 199, "5", 5), ("", False, False, True)),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_response_framing(given: tuple, expected: tuple) -> None:
    assert response_framing(*given) == expected


@pytest.mark.parametrize("declared", ["5\r\nx-injected: 1", "-1", "", "5, 5", "0x10"])
def test_a_declared_length_that_is_not_a_number_is_never_written(declared: str) -> None:
    with pytest.raises(UnsafeHead, match="Content-Length"):
        response_framing("GET", "1.1", True, 200, declared, None)
