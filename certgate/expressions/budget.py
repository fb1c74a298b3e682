"""How much work one request's policy expressions may do on the event loop every client shares.

Expressions run synchronously on the gateway's event loop, so a slow one delays every other
client of the process. Two kinds of bound apply:

* Sizes, checked *before* a value is built: a string an expression builds
  (`expression_max_string_chars`), a collection (`expression_max_items`), JSON text it parses
  (`expression_json_max_chars`) and JSON nesting (`expression_json_max_depth`, Json.NET's
  MaxDepth), loop iterations per evaluation (`expression_loop_iterations`).
* Time: one request's *metered* expressions together may run `expression_time_budget` seconds.
  The compiler marks an expression metered when it can take long (loops, lambdas, local
  functions, calls of costly members such as `Replace`, `Join` or JSON parsing); evaluating one
  arms `METER.deadline`, and loop back-edges (`pulse`) and the costly shims (`spend`) compare the
  clock with it. Expressions that are not metered (most: `context.Request.Headers...`) never read
  the clock. Over budget raises `BudgetExceeded`: the policy fails with 500 and `LastError`, as
  APIM fails an expression, and `catch` cannot swallow it.

The limits are process settings: the gateway server applies its `Limits` once (`apply_limits`).
"""

from __future__ import annotations

import math
from time import monotonic

from certgate.limits import DEFAULT_LIMITS, Limits

from .errors import BudgetExceeded

PULSE_EVERY = 256  # loop iterations or lambda calls between two looks at the clock

COSTLY_MEMBERS = frozenset(
    {
        # strings and builders whose cost grows with the data
        "Replace", "PadLeft", "PadRight", "Join", "Concat", "Format", "Split", "Insert",
        "Append", "AppendLine", "AppendFormat", "ToString", "Repeat",
        # JSON and bodies
        "As", "Parse", "DeserializeObject", "SerializeObject", "FromObject", "DeepClone",
        "SelectToken", "SelectTokens", "Merge",
        # regular expressions
        "IsMatch", "Match", "Matches",
    }
)  # fmt: skip
"""Member names whose call makes an expression metered."""


class Meter:
    """The process's expression limits and the deadline of the evaluation in progress."""

    __slots__ = (
        "countdown",
        "deadline",
        "json_max_chars",
        "json_max_depth",
        "loop_iterations",
        "max_items",
        "max_string",
        "regex_timeout",
        "time_budget",
    )

    def __init__(self, limits: Limits) -> None:
        self.deadline = math.inf
        self.countdown = PULSE_EVERY
        self.apply(limits)

    def apply(self, limits: Limits) -> None:
        self.time_budget = limits.expression_time_budget
        self.loop_iterations = limits.expression_loop_iterations
        self.max_string = limits.expression_max_string_chars
        self.max_items = limits.expression_max_items
        self.json_max_chars = limits.expression_json_max_chars
        self.json_max_depth = limits.expression_json_max_depth
        self.regex_timeout = limits.expression_regex_timeout


METER = Meter(DEFAULT_LIMITS)


def apply_limits(limits: Limits) -> None:
    """Makes `limits` the expression limits of this process."""
    METER.apply(limits)


def spend() -> None:
    """A costly shim's check: fails the evaluation once its request's time budget is used up."""
    if monotonic() > METER.deadline:
        raise BudgetExceeded("expression ran past its time budget")


def pulse() -> None:
    """A loop back-edge or lambda call: looks at the clock every PULSE_EVERY calls."""
    meter = METER
    meter.countdown -= 1
    if meter.countdown <= 0:
        meter.countdown = PULSE_EVERY
        spend()


def check_items(count: int) -> None:
    """Before building a list, array, dictionary or JSON array of `count` items."""
    if count > METER.max_items:
        raise BudgetExceeded("collection larger than the expression limit")


def check_length(length: int) -> None:
    """Before building a string of `length` characters."""
    if length > METER.max_string:
        raise BudgetExceeded("string grew beyond the expression size limit")
