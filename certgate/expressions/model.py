"""The convention that keeps policy expressions inside APIM's sandbox.

An expression may only touch objects whose class derives from `CsObject`, and on them only the C#
member names listed in `__cs_members__`. Everything else is a compile or run-time error, never a
Python attribute lookup on user-chosen names.
"""

from __future__ import annotations

from typing import ClassVar


class CsObject:
    """Base of every object policy expressions can reach (context, request, certificate...)."""

    __slots__ = ()
    __cs_type__: ClassVar[str] = "object"
    __cs_members__: ClassVar[frozenset[str]] = frozenset()

    def ToString(self) -> str:
        return self.__cs_type__
