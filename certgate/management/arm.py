"""ARM addressing: the service root prefix, api-version rules, resource ids and contract shapes.

api-version: on the ARM path it is required (400 `MissingApiVersionParameter`), on the short path
optional; when present anywhere it must be one APIM publishes (400 `InvalidApiVersionParameter`).
Every accepted version gets the same resource shapes, those of 2024-05-01.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from certgate.management.errors import ApiError, ValidationError

PROVIDER = "Microsoft.ApiManagement"
STABLE_API_VERSIONS = (
    "2016-07-07",
    "2016-10-10",
    "2017-03-01",
    "2018-01-01",
    "2019-01-01",
    "2019-12-01",
    "2020-12-01",
    "2021-08-01",
    "2022-08-01",
    "2024-05-01",
)
PREVIEW_API_VERSIONS = (
    "2018-06-01-preview",
    "2019-12-01-preview",
    "2020-06-01-preview",
    "2021-01-01-preview",
    "2021-04-01-preview",
    "2021-12-01-preview",
    "2022-04-01-preview",
    "2022-09-01-preview",
    "2023-03-01-preview",
    "2023-05-01-preview",
    "2023-09-01-preview",
    "2024-06-01-preview",
    "2024-10-01-preview",
    "2025-03-01-preview",
    "2025-09-01-preview",
)
API_VERSIONS = frozenset(STABLE_API_VERSIONS + PREVIEW_API_VERSIONS)

_ARM_ROOT = re.compile(
    r"^/subscriptions/(?P<s>[^/]+)/resourceGroups/(?P<g>[^/]+)/providers/"
    r"Microsoft\.ApiManagement/service/(?P<n>[^/]+)(?:/(?P<rest>.*))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ServiceRoot:
    """The subscription, resource group and service name that ids are rendered under."""

    subscription: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "certgate"
    service: str = "certgate"

    @property
    def prefix(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/service/{self.service}"
        )

    def resource_id(self, path: str, *, is_service: bool = False) -> str:
        return self.prefix if is_service else f"{self.prefix}/{path}"


@dataclass(frozen=True)
class Addressed:
    root: ServiceRoot
    relative: str
    arm: bool


def address(url_path: str, api_version: str | None, default: ServiceRoot) -> Addressed:
    """Splits a request path into the service root and the relative resource path."""
    found = _ARM_ROOT.match(url_path.rstrip("/") or "/")
    if found:
        if not api_version:
            raise ApiError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        root = ServiceRoot(found["s"], found["g"], found["n"])
        relative, arm = (found["rest"] or "").strip("/"), True
    else:
        root, relative, arm = default, url_path.strip("/"), False
    if api_version and api_version not in API_VERSIONS:
        raise ApiError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{api_version}' is invalid. The supported versions are "
            f"'{', '.join(STABLE_API_VERSIONS)}' and their previews.",
        )
    return Addressed(root, relative, arm)


# -- resource names ------------------------------------------------------------------------------
# APIM's id parameters (apimanagement.json): length limits and patterns per id; ids not listed get
# the common rule (1 to 80 characters, no `* # & + : < > ?`). ARM names are case-insensitive
# (the dispatcher resolves a name to its stored spelling); `.` and `..` are refused because HTTP
# clients resolve them as path segments, and control characters because names reach terminals.
_APIM_NAME = r"[^*#&+:<>?/\x00-\x1f\x7f]"
_FRAGMENT_NAME = r"(?:\w|\w[\w-]*\w)"
_ID_RULES: dict[str, tuple[int, str, str]] = {
    "apiId": (256, _APIM_NAME + "+", "none of * # & + : < > ? /"),
    "productId": (256, _APIM_NAME + "+", "none of * # & + : < > ? /"),
    "namedValueId": (256, _APIM_NAME + "+", "none of * # & + : < > ? /"),
    "id": (80, _FRAGMENT_NAME, "letters, digits, '_' and '-' (not first or last)"),
}
_DEFAULT_RULE = (80, _APIM_NAME + "+", "none of * # & + : < > ? /")
_COMPILED = {
    name: (limit, re.compile(pattern), wording)
    for name, (limit, pattern, wording) in {**_ID_RULES, "": _DEFAULT_RULE}.items()
}


def check_id(name: str, value: str) -> None:
    """400 naming the id parameter when `value` breaks APIM's rules for it."""
    limit, pattern, wording = _COMPILED.get(name, _COMPILED[""])
    if value in (".", "..") or len(value) > limit or not pattern.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValidationError(
            f"'{shown.encode('unicode_escape').decode()}' is not a valid {name}: 1 to {limit} "
            f"characters, {wording}, not '.' or '..'.",
            name,
        )


def merge_patch(base: dict, patch: dict) -> dict:
    """ARM's PATCH: `patch` deep-merged over `base` (objects merge; lists and scalars replace)."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged
