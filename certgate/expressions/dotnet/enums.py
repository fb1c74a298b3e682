"""C# enums the sandbox exposes (StringComparison, StringSplitOptions, JTokenType, ...)."""

from __future__ import annotations

from ..model import CsObject
from . import CsType, constant, register


class CsEnum(CsObject):
    """One enum member: `type_name`, `name` and integer `value`; prints as its name."""

    __slots__ = ("name", "type_name", "value")
    __cs_type__ = "Enum"
    __cs_members__ = frozenset({"ToString", "HasFlag"})

    def __init__(self, type_name: str, name: str, value: int) -> None:
        self.type_name, self.name, self.value = type_name, name, value

    def ToString(self) -> str:
        return self.name

    def HasFlag(self, other: CsEnum) -> bool:
        return self.value & other.value == other.value

    def __cs_equals__(self, other: object) -> bool:
        return isinstance(other, CsEnum) and (other.type_name, other.value) == (
            self.type_name,
            self.value,
        )

    def __cs_number__(self) -> int:
        return self.value

    def __or__(self, other: CsEnum) -> CsEnum:
        return CsEnum(self.type_name, f"{self.name}, {other.name}", self.value | other.value)

    def __repr__(self) -> str:
        return f"{self.type_name}.{self.name}"


def define(type_name: str, names: str, *aliases: str, flags: bool = False) -> dict[str, CsEnum]:
    """Register an enum type whose members are `names` (space separated), numbered in order."""
    values = {
        n: CsEnum(type_name, n, (1 << i) >> 1 if flags else i) for i, n in enumerate(names.split())
    }
    register(
        CsType(
            type_name,
            lambda v: isinstance(v, CsEnum) and v.type_name == type_name,
            static_props={n: constant(v) for n, v in values.items()},
        ),
        *aliases,
    )
    return values


STRING_COMPARISON = define(
    "StringComparison",
    "CurrentCulture CurrentCultureIgnoreCase InvariantCulture InvariantCultureIgnoreCase "
    "Ordinal OrdinalIgnoreCase",
)
SPLIT_OPTIONS = define("StringSplitOptions", "None RemoveEmptyEntries TrimEntries", flags=True)
REGEX_OPTIONS = define(
    "RegexOptions",
    "None IgnoreCase Multiline ExplicitCapture Compiled Singleline IgnorePatternWhitespace "
    "RightToLeft",
    flags=True,
)
JTOKEN_TYPE = define(
    "JTokenType",
    "None Object Array Constructor Property Comment Integer Float String Boolean Null Undefined "
    "Date Raw Bytes Guid Uri TimeSpan",
)
FORMATTING = define("Formatting", "None Indented")
DATETIME_KIND = define("DateTimeKind", "Unspecified Utc Local")
URI_KIND = define("UriKind", "RelativeOrAbsolute Absolute Relative")
X509_NAME_TYPE = define(
    "X509NameType", "SimpleName EmailName UpnName DnsName DnsFromAlternativeName UrlName"
)
MIDPOINT = define(
    "MidpointRounding", "ToEven AwayFromZero ToZero ToNegativeInfinity ToPositiveInfinity"
)


def ignore_case(comparison: object) -> bool:
    """Whether a StringComparison (or StringComparer) argument asks for case-insensitivity."""
    return isinstance(comparison, CsEnum) and comparison.name.endswith("IgnoreCase")


STRING_COMPARER = define(
    "StringComparer",
    "CurrentCulture CurrentCultureIgnoreCase InvariantCulture InvariantCultureIgnoreCase "
    "Ordinal OrdinalIgnoreCase",
)
