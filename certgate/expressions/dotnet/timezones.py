"""System.TimeZoneInfo over `zoneinfo`, with Windows and IANA ids as .NET on Linux accepts them.

Windows ids (`W. Europe Standard Time`) map to IANA zones through CLDR's windowsZones table
(shipped by `tzlocal`). A converted time has DateTimeKind.Unspecified (a naive `datetime`), as
`ConvertTimeFromUtc` gives; converting to UTC gives DateTimeKind.Utc. The gateway's `Local` zone
is UTC, as APIM's gateways run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from ..errors import cs_error
from ..model import CsObject
from ..runtime import cs_str
from . import CsType, register
from .datetimes import DateTimeOffset, kind


class TimeZoneInfo(CsObject):
    """One time zone, under the id it was found by."""

    __slots__ = ("Id", "_zone")
    __cs_type__ = "TimeZoneInfo"
    __cs_members__ = frozenset(
        {
            "Id",
            "StandardName",
            "BaseUtcOffset",
            "SupportsDaylightSavingTime",
            "GetUtcOffset",
            "IsDaylightSavingTime",
            "ToString",
        }
    )

    def __init__(self, zone_id: str, zone: ZoneInfo) -> None:
        self.Id = zone_id
        self._zone = zone

    @property
    def StandardName(self) -> str:
        return self.Id

    @property
    def BaseUtcOffset(self) -> timedelta:
        january = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC).astimezone(self._zone)
        july = january.replace(month=7)
        return min(january.utcoffset() or timedelta(), july.utcoffset() or timedelta())

    @property
    def SupportsDaylightSavingTime(self) -> bool:
        year = datetime.now(UTC).year
        offsets = {datetime(year, m, 1, tzinfo=self._zone).dst() for m in range(1, 13)}
        return offsets != {timedelta(0)}

    def GetUtcOffset(self, when: object) -> timedelta:
        return self._local(when).utcoffset()  # type: ignore[return-value]

    def IsDaylightSavingTime(self, when: object) -> bool:
        return bool(self._local(when).dst())

    def ToString(self) -> str:
        return self.Id

    def _local(self, when: object) -> datetime:
        """`when` in this zone: a UTC or DateTimeOffset instant converted, an Unspecified time
        taken as this zone's wall-clock time."""
        if isinstance(when, DateTimeOffset):
            return when.value.astimezone(self._zone)
        if not isinstance(when, datetime):
            raise cs_error("ArgumentException", "A DateTime or DateTimeOffset is expected.")
        if when.tzinfo is None:
            return when.replace(tzinfo=self._zone)
        return when.astimezone(self._zone)

    def from_utc(self, when: datetime) -> datetime:
        instant = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        if self._zone.key == "Etc/UTC":
            return instant
        return instant.astimezone(self._zone).replace(tzinfo=None)


UTC_ZONE = TimeZoneInfo("UTC", ZoneInfo("Etc/UTC"))


def find_zone(zone_id: object) -> TimeZoneInfo:
    """`FindSystemTimeZoneById`: a Windows or IANA id; TimeZoneNotFoundException otherwise."""
    if zone_id is None:
        raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 'id')")
    text = cs_str(zone_id)
    key = win_tz.get(text, text)
    try:
        if ".." in key or key.startswith("/") or not key.strip():
            raise ValueError(key)
        return TimeZoneInfo(text, ZoneInfo(key))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise cs_error(
            "TimeZoneNotFoundException",
            f"The time zone ID '{text}' was not found on the local computer.",
        ) from None


def _utc_instant(when: object) -> datetime:
    if not isinstance(when, datetime):
        raise cs_error("ArgumentException", "A DateTime is expected.")
    if kind(when) == "Local":
        raise cs_error(
            "ArgumentException",
            "The conversion could not be completed because the supplied DateTime did not have "
            "the Kind property set correctly.",
        )
    return when


def convert_from_utc(when: object, zone: TimeZoneInfo) -> datetime:
    return zone.from_utc(_utc_instant(when))


def convert_to_utc(when: object, zone: TimeZoneInfo | None = None) -> datetime:
    if not isinstance(when, datetime):
        raise cs_error("ArgumentException", "A DateTime is expected.")
    if when.tzinfo is not None:
        return when.astimezone(UTC)
    return (zone or UTC_ZONE)._local(when).astimezone(UTC)


def convert_time(when: object, zone: TimeZoneInfo) -> object:
    """`ConvertTime(DateTime|DateTimeOffset, zone)`: the same instant in `zone`."""
    if isinstance(when, DateTimeOffset):
        return DateTimeOffset(when.value.astimezone(zone._zone))
    if isinstance(when, datetime) and when.tzinfo is None:
        return zone.from_utc(convert_to_utc(when))
    return zone.from_utc(_utc_instant(when))


register(
    CsType(
        "TimeZoneInfo",
        lambda v: isinstance(v, TimeZoneInfo),
        static_props={"Utc": lambda: UTC_ZONE, "Local": lambda: UTC_ZONE},
        static_methods={
            "FindSystemTimeZoneById": find_zone,
            "ConvertTimeFromUtc": convert_from_utc,
            "ConvertTimeToUtc": convert_to_utc,
            "ConvertTime": convert_time,
            "ConvertTimeBySystemTimeZoneId": lambda when, zone_id: convert_time(
                when, find_zone(zone_id)
            ),
        },
    )
)
