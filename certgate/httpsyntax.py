"""What a policy may put into a message head (RFC 9110 / 9112), checked once: no splitting, no
smuggling.

A header name or method that is not a token, or a CR, LF or NUL in a value or reason phrase, would
let a policy write a second header, response or request onto the wire. Policy elements check their
constants when the policy is saved (`name_problem`...: a message, or None) and their computed
values when they run; the writers then check each joined head once (`head_is_clean`), a few
C-level scans, as the last guard. A head whose fields all came from a strict parser (llhttp and h2
refuse CR, LF and NUL in names and values; the backend connection refuses a NUL in a reason
phrase) or from the gateway itself, untouched by policies, is `vetted` (`Headers.vetted`) and
skips that scan: those bytes cannot hold a break.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_BREAK = re.compile(r"[\r\n\x00]").search
_NOT_IN_TARGET = re.compile(r"[\x00-\x20\x7f]").search
# host [":" port]: a registered name, IPv4 address or bracketed IPv6 literal.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9\-._~]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?").fullmatch


class UnsafeHead(ValueError):
    """A message head that would carry a line break, NUL or a non-token where the syntax forbids
    it; nothing of it was written."""


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a header name (None when it can)."""
    if _TOKEN(name):
        return None
    return f"'{_shown(name)}' is not a valid header name (an RFC 9110 token)."


def value_problem(value: str, what: str = "header value") -> str | None:
    """Why `value` cannot be a header value or reason phrase: a CR, LF or NUL in it."""
    return None if _BREAK(value) is None else f"The {what} contains a CR, LF or NUL character."


def method_problem(method: str) -> str | None:
    """Why `method` cannot be a request method (None when it can)."""
    return None if _TOKEN(method) else f"'{_shown(method)}' is not a valid HTTP method (a token)."


def target_problem(target: str) -> bool:
    """Whether `target` has a space or control character: it could not be one request line's
    target (the gateway's own parts are safe by construction: a normalised path, a query
    checked on arrival or encoded by the policy that rebuilt it)."""
    return _NOT_IN_TARGET(target) is not None


def host_problem(value: str) -> str | None:
    """Why `value` cannot be a `Host` header (an authority: host and optional port)."""
    if _AUTHORITY(value):
        return None
    return f"'{_shown(value)}' is not a valid Host (host[:port])."


def head_is_clean(head: str, lines: int) -> bool:
    """Whether a joined head of `lines` CRLF-terminated lines (the blank one included) has no
    other CR, LF or NUL: a few C-level scans, cheap enough for every message."""
    return head.count("\n") == lines and head.count("\r") == lines and "\x00" not in head


def _shown(text: str) -> str:
    """Text for an error message: control characters escaped, long text cut."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 60 else shown[:57] + "..."
