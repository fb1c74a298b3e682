"""ARM resource names are case-insensitive: `MyBackend` names the backend stored as `mybackend`.

References are resolved to the stored spelling when a document is saved or a configuration is
compiled; `ArmNames` is the by-name mapping of a compiled configuration, for the ids that only a
request can tell (`backend-id="@(...)"`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

V = TypeVar("V")


def stored_name(wanted: str, names: Iterable[str]) -> str | None:
    """The one of `names` that `wanted` designates: itself, else the one that differs in case."""
    folded = wanted.casefold()
    found = None
    for name in names:
        if name == wanted:
            return name
        if found is None and name.casefold() == folded:
            found = name
    return found


class ArmNames(dict[str, V]):
    """Values by stored name. `get` and `[]` are dict's (exact, in C: what the gateway uses for
    ids resolved when saved); `named` also finds another spelling, with one more lookup in a
    case-folded index built once, with the mapping."""

    __slots__ = ("_folded",)

    def __init__(self, items: Mapping[str, V]) -> None:
        super().__init__(items)
        self._folded = {name.casefold(): name for name in items}

    def named(self, key: str) -> V | None:
        found = self.get(key)
        if found is None:
            name = self._folded.get(key.casefold())
            found = None if name is None else self[name]
        return found
