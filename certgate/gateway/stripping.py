"""Client-sent identity headers stripped from every request before policies run.

Backends commonly trust headers that a TLS-terminating proxy sets (`X-ARR-ClientCert` from Azure
App Service, Envoy's `X-Forwarded-Client-Cert`, nginx-style `X-SSL-Client-*`...). A client that
sends them itself would assert an identity it does not hold. `Client-Cert` and `Client-Cert-Chain`
(RFC 9440) are always dropped; the names here are the configurable rest
(`certgate serve --strip-request-headers`). They extend the one table both protocols consult for
every header (`SPECIAL_REQUEST_HEADERS`): exact names cost nothing extra, and prefixes (`name*`)
one `str.startswith` for the headers the table does not know.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from certgate.headerkinds import DROP, SPECIAL_REQUEST_HEADERS
from certgate.limits import DEFAULT_LIMITS

_NAME = re.compile(r"[!#$%&'+\-.^_`|~0-9a-z]+\*?").fullmatch


class RequestHeaderRules(NamedTuple):
    """What the protocols do with a request header: `kinds` by lower-case name (the special
    headers plus the stripped names, as `DROP`), and prefixes whose headers are dropped."""

    kinds: dict[str, int]
    drop_prefixes: tuple[str, ...]


def request_header_rules(spec: str) -> RequestHeaderRules:
    """Rules from a comma-separated list of header names, `name*` for a prefix ('' for none).

    Raises ValueError naming the flag and the offending entry."""
    kinds = dict(SPECIAL_REQUEST_HEADERS)
    prefixes: list[str] = []
    for item in spec.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if not _NAME(name):
            raise ValueError(
                f"--strip-request-headers: '{item.strip()}' is not a header name "
                "(an RFC 9110 token, optionally ending in '*' for a prefix)"
            )
        if name.endswith("*"):
            prefixes.append(name[:-1])
        elif kinds.get(name, DROP) != DROP:
            raise ValueError(
                f"--strip-request-headers: '{item.strip()}' is a header the gateway itself handles"
            )
        else:
            kinds[name] = DROP
    return RequestHeaderRules(kinds, tuple(prefixes))


DEFAULT_HEADER_RULES = request_header_rules(DEFAULT_LIMITS.strip_request_headers)
