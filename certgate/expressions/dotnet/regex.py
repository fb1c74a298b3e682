"""System.Text.RegularExpressions.Regex over the `regex` package, translating .NET syntax.

Patterns are translated token by token by `regexsyntax.translate` (named groups, `\\Z`/`\\z`,
escapes inside character classes...); replacement patterns `$1`, `${n}`, `$$`, `$&` here.
Constructs the translation cannot express fail with ArgumentException when the Regex is built.
Every match runs under a time limit (the `expression_regex_timeout` limit, within the request's
time budget), so a catastrophically backtracking pattern fails the request instead of stalling
the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from time import monotonic
from typing import TypeVar, cast

import regex as re

from ..budget import METER, check_length, spend
from ..errors import BudgetExceeded, cs_error
from ..model import CsObject
from ..runtime import cs_str
from . import CsType, instance_of, register
from .enums import CsEnum
from .regexsyntax import translate

T = TypeVar("T")

_FLAGS = {
    "IgnoreCase": re.IGNORECASE,
    "Multiline": re.MULTILINE,
    "Singleline": re.DOTALL,
    "IgnorePatternWhitespace": re.VERBOSE,
}


def _flags(options: object) -> int:
    if not isinstance(options, CsEnum):
        return 0
    out = 0
    for name, bit in _FLAGS.items():
        if name in options.name.split(", "):
            out |= bit
    return out


@lru_cache(maxsize=512)
def compile_regex(pattern: str, flags: int) -> re.Pattern[str]:
    p = translate(pattern, bool(flags & re.VERBOSE))
    try:
        return re.compile(p, flags)
    except re.error as e:
        raise cs_error("ArgumentException", f"Invalid pattern '{pattern}': {e}") from None


def _replacement(repl: str) -> str:
    out = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "\\":
            out.append("\\\\")
        elif c == "$" and i + 1 < len(repl):
            n = repl[i + 1]
            if n == "$":
                out.append("$")
                i += 1
            elif n == "&":
                out.append("\\g<0>")
                i += 1
            elif n.isdigit():
                j = i + 1
                while j < len(repl) and repl[j].isdigit():
                    j += 1
                out.append(f"\\g<{repl[i + 1 : j]}>")
                i = j - 1
            elif n == "{" and "}" in repl[i:]:
                j = repl.index("}", i)
                out.append(f"\\g<{repl[i + 2 : j]}>")
                i = j
            else:
                out.append("$")
        else:
            out.append(c)
        i += 1
    return "".join(out)


class Group(CsObject):
    __slots__ = ("Index", "Length", "Name", "Success", "Value")
    __cs_type__ = "Group"
    __cs_members__ = frozenset({"Success", "Value", "Index", "Length", "Name", "ToString"})

    def __init__(self, m: re.Match[str] | None, key: int | str) -> None:
        start = m.start(key) if m is not None else -1
        self.Success = start >= 0
        self.Value = m.group(key) if m is not None and self.Success else ""
        self.Index = max(start, 0)
        self.Length = len(self.Value)
        self.Name = str(key)

    def ToString(self) -> str:
        return self.Value


class GroupCollection(CsObject):
    __slots__ = ("_m",)
    __cs_type__ = "GroupCollection"
    __cs_members__ = frozenset({"Count", "ContainsKey"})

    def __init__(self, m: re.Match[str] | None) -> None:
        self._m = m

    @property
    def Count(self) -> int:
        return 0 if self._m is None else self._m.re.groups + 1

    def ContainsKey(self, key: str) -> bool:
        return self._m is not None and key in self._m.re.groupindex

    def __getitem__(self, key: object) -> Group:
        if self._m is None:
            return Group(None, 0)
        try:
            return Group(self._m, key if isinstance(key, int) else cs_str(key))
        except (IndexError, re.error):
            return Group(None, 0)

    def __iter__(self):
        return iter([self[i] for i in range(self.Count)])


class Match(Group):
    __slots__ = ("_m",)
    __cs_type__ = "Match"
    __cs_members__ = Group.__cs_members__ | frozenset({"Groups", "NextMatch", "Result"})

    def __init__(self, m: re.Match[str] | None, pattern: re.Pattern[str] | None = None) -> None:
        super().__init__(m, 0)
        self._m = m

    @property
    def Groups(self) -> GroupCollection:
        return GroupCollection(self._m)

    def NextMatch(self) -> Match:
        if self._m is None:
            return self
        nxt = _timed(
            self._m.re.search, self._m.string, self._m.end() + (self._m.end() == self._m.start())
        )
        return Match(nxt)

    def Result(self, replacement: str) -> str:
        return "" if self._m is None else self._m.expand(_replacement(replacement))


_Match = Match  # the class, for annotations inside `Regex`, whose method `Match` hides it


class Regex(CsObject):
    __slots__ = ("_re",)
    __cs_type__ = "Regex"
    __cs_members__ = frozenset({"IsMatch", "Match", "Matches", "Replace", "Split", "ToString"})

    def __init__(self, pattern: object, options: object = None, *_: object) -> None:
        self._re = compile_regex(cs_str(pattern), _flags(options))

    def IsMatch(self, s: object, *_: object) -> bool:
        return _timed(self._re.search, _input(s)) is not None

    def Match(self, s: object, *_: object) -> Match:
        return Match(_timed(self._re.search, _input(s)))

    def Matches(self, s: object, *_: object) -> list[_Match]:
        return [Match(m) for m in _timed(_all_matches(self._re), _input(s))]

    def Replace(self, s: object, repl: object, *_: object) -> str:
        """The result's length is checked before it is built: from the match count for a
        literal replacement, match by match for group references and MatchEvaluators."""
        text = _input(s)
        template = None if callable(repl) else _replacement(cs_str(repl))
        evaluator = cast("Callable[[_Match], object]", repl)  # a MatchEvaluator when no template
        if template is not None and "\\g<" not in template:
            matches = _timed(self._re.subn, "", text)[1]
            check_length(len(text) + matches * len(template))
            return _timed(self._re.sub, template, text)
        total = [len(text)]

        def expand(m: re.Match[str]) -> str:
            piece = m.expand(template) if template is not None else cs_str(evaluator(Match(m)))
            total[0] += len(piece)
            check_length(total[0])
            return piece

        return _timed(self._re.sub, expand, text)

    def Split(self, s: object, *_: object) -> list[str]:
        return [x if x is not None else "" for x in _timed(self._re.split, _input(s))]

    def ToString(self) -> str:
        return self._re.pattern


def _all_matches(pattern: re.Pattern[str]) -> Callable[[str, float], list[re.Match[str]]]:
    return lambda text, timeout: list(pattern.finditer(text, timeout=timeout))


def _timed(fn: Callable[..., T], *args: object) -> T:
    """Run one regex operation within the regex timeout and the request's time budget."""
    spend()
    timeout = min(METER.regex_timeout, METER.deadline - monotonic())
    try:
        return fn(*args, timeout=timeout)
    except TimeoutError:
        raise BudgetExceeded("regular expression ran past its time limit") from None


def _input(s: object) -> str:
    if s is None:
        raise cs_error("ArgumentNullException", "Value cannot be null. (Parameter 'input')")
    return cs_str(s)


def _static(method: str) -> Callable[..., object]:
    def run(s: object, pattern: object, *rest: object) -> object:
        options = next((r for r in rest if isinstance(r, CsEnum)), None)
        args = [r for r in rest if not isinstance(r, CsEnum)]
        return getattr(Regex(pattern, options), method)(s, *args)

    return run


register(
    CsType(
        "Regex",
        lambda v: isinstance(v, Regex),
        static_methods={
            "IsMatch": _static("IsMatch"),
            "Match": _static("Match"),
            "Matches": _static("Matches"),
            "Replace": _static("Replace"),
            "Split": _static("Split"),
            "Escape": lambda s: re.sub(r"([\\*+?|{}\[\]()^$.# \t\n])", r"\\\1", cs_str(s)),
            "Unescape": lambda s: re.sub(r"\\(.)", r"\1", cs_str(s)),
        },
        new=Regex,
    )
)
for _n, _cls in (("Match", Match), ("Group", Group), ("GroupCollection", GroupCollection)):
    register(CsType(_n, instance_of(_cls)))
