"""Request path normalisation: the path the router matches is exactly the path forwarded.

A backend resolves `%69`, `%2e%2e`, `..` and `//` itself; if the router matched the raw path, a
request could reach one operation's backend path under another operation's policy. So, once per
request and before routing, the path is brought to one canonical form (RFC 3986 6.2.2, as Envoy's
`normalize_path` + `merge_slashes` and nginx do):

- percent-escapes of unreserved characters are decoded (`%69` -> `i`, `%2E` -> `.`), every other
  escape is kept with upper-case hex and decoded by nobody here (`%252e` stays `%252E`: a literal
  `%2e` to the backend, never decoded twice);
- characters a path may not hold raw (`"`, `<`, `{`, non-ASCII bytes...) are percent-encoded
  (the protocols hand the target over as Latin-1 text, one character per byte as received);
- dot segments are removed (RFC 3986 5.2.4) and empty segments merged (`//` -> `/`).

Refused (`PathError`, answered 400): an encoded `/` or `\\` (`%2F`, `%5C`: a segment boundary for
some backends, data for others), a raw `\\` (IIS and ASP.NET read it as `/`), NUL or another control
character, a `%` without two hex digits, a `..` above `/`, and a dot segment with parameters
(`..;x`: Tomcat and Jetty treat it as `..`, everything else as a name). Other `;` stay data on both
sides. Whether the path climbed above the API's own root is known only after routing: `normalize`
returns the lowest depth a `..` reached for the handler to compare with the API's depth.
"""

from __future__ import annotations

import re

NO_CLIMB = 1 << 30  # "no `..` removed anything": deeper than any API path

# RFC 3986 pchar without `%`, plus `/`: a path made only of these needs no escape processing.
_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*").fullmatch
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# One escape, a lone `%`, or one character outside pchar + `/`.
_SPECIAL = re.compile(r"%([0-9A-Fa-f]{2})|%|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")


class PathError(ValueError):
    """A request path refused with 400; the message says why (no request data in it)."""


def normalize(path: str) -> tuple[str, int]:
    """`(canonical path, climb floor)` of a raw absolute path (starting with `/`, no query).

    The floor is the fewest segments left above the cursor after a `..` (`NO_CLIMB` without
    one). Most paths are returned unchanged by three C-level checks."""
    if _PLAIN(path):
        if "/." not in path and "//" not in path:
            return path, NO_CLIMB
    else:
        path = _SPECIAL.sub(_canonical_escape, path)
    return _remove_dot_segments(path)


def _canonical_escape(found: re.Match[str]) -> str:
    hexdigits = found.group(1)
    if hexdigits is None:
        char = found.group()
        if char == "%":
            raise PathError("a '%' in the path is not followed by two hex digits")
        if char == "\\":
            raise PathError("a backslash in the path")
        if char < " " or char == "\x7f":
            raise PathError("a control character in the path")
        raw = char.encode("latin-1") if char <= "\xff" else char.encode("utf-8")
        return "".join(f"%{byte:02X}" for byte in raw)
    char = chr(int(hexdigits, 16))
    if char in _UNRESERVED:
        return char
    if char == "/" or char == "\\":
        raise PathError("an encoded '/' or '\\' (%2F, %5C) in the path")
    if char == "\x00":
        raise PathError("an encoded NUL (%00) in the path")
    return "%" + hexdigits.upper()


def _remove_dot_segments(path: str) -> tuple[str, int]:
    out: list[str] = []
    floor = NO_CLIMB
    trailing = False
    for segment in path.split("/")[1:]:
        trailing = True
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if not out:
                raise PathError("the path climbs above '/'")
            out.pop()
            floor = min(floor, len(out))
            continue
        if segment.startswith(".") and segment.partition(";")[0] in (".", ".."):
            raise PathError("a dot segment with parameters (';') in the path")
        out.append(segment)
        trailing = False
    if not out:
        return "/", floor
    return "/" + "/".join(out) + ("/" if trailing else ""), floor
