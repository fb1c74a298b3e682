"""Policy elements by name: one small class per element, registered with `@register("name")`.

An element class declares the attributes it accepts and which of them may hold expressions, parses
its XML node once at save time (`parse(node, loader)`), and runs per request
(`async execute(context) -> bool | None`; True ends the pipeline with `context.Response`).
The engine only knows this protocol, never an element's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from certgate.policy.buffering import buffer_request_body, buffer_response_body

if TYPE_CHECKING:
    from certgate.policy.context import Context
    from certgate.policy.loader import Loader
    from certgate.policy.reader import Node

SECTIONS = ("inbound", "backend", "outbound", "on-error")
ALL_SECTIONS = frozenset(SECTIONS)

_REGISTRY: dict[str, type[Policy]] = {}

# What `execute` returns to end inbound processing with a cached response: the engine continues
# after the outbound resume point (cache-store). Truthy, so enclosing elements pass it up.
RESUME = 2


@dataclass(slots=True, kw_only=True)
class Policy:
    """Base of every policy element: each is a `@dataclass(slots=True)` of what it parsed, built
    by `parse` with `cls(...)`; the loader then sets where it stands (id, path, scope, section).

    `attributes`: attribute names accepted besides `id`. `expressions`: the places expressions are
    allowed, as attribute names, `#text` for the element's content, and `child/attr` or
    `child/#text` for configuration children (`value/#text`).
    """

    name: ClassVar[str] = ""
    attributes: ClassVar[frozenset[str]] = frozenset()
    expressions: ClassVar[frozenset[str]] = frozenset()
    sections: ClassVar[frozenset[str]] = ALL_SECTIONS
    resume_point: ClassVar[bool] = False
    policy_id: str | None = None
    path: str = ""
    scope: str = ""
    section: str = ""

    @classmethod
    def parse(cls, node: Node, loader: Loader) -> Policy:
        """Validate `node` and build the element; the default accepts no content."""
        loader.no_children(node)
        return cls()

    async def execute(self, context: Context) -> bool | int | None:
        """Run for one request; True (or RESUME) ends the pipeline with `context.Response`."""
        raise NotImplementedError


P = TypeVar("P", bound=type[Policy])


def register(name: str) -> Callable[[P], P]:
    """Class decorator: make `name` a policy element executed by the decorated class."""

    def decorate(cls: P) -> P:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def policy_class(name: str) -> type[Policy] | None:
    _load_elements()
    return _REGISTRY.get(name)


def registered_names() -> frozenset[str]:
    _load_elements()
    return frozenset(_REGISTRY)


_loaded = False


def _load_elements() -> None:
    """Import every module of `certgate.policy.elements` once, so their classes register."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil

    from certgate.policy import elements

    for module in pkgutil.iter_modules(elements.__path__):
        importlib.import_module(f"{elements.__name__}.{module.name}")


class PolicyFault(Exception):
    """An exception raised by `policy`, on its way to the engine's on-error handling."""

    def __init__(self, policy: Policy, error: BaseException) -> None:
        super().__init__(str(error))
        self.policy = policy
        self.error = error


async def run_policies(policies: Sequence[Policy], context: Context) -> bool | int:
    """Run policies in order; True when one ended the pipeline (return-response, mock-response),
    RESUME when a cached response continues after cache-store."""
    for policy in policies:
        try:
            if result := await policy.execute(context):
                return result
        except PolicyFault:
            raise
        except Exception as exc:
            raise PolicyFault(policy, exc) from exc
    return False


@dataclass(slots=True)
class BufferBodies(Policy):
    """Wraps a policy whose expressions read a body: buffer it first, then run the policy.

    Its failures, reading a body included, are the wrapped policy's, so errors name that policy.
    """

    inner: Policy
    request: bool
    response: bool

    async def execute(self, context: Context) -> bool | int | None:
        try:
            if self.request:
                await buffer_request_body(context)
            if self.response:
                await buffer_response_body(context)
            return await self.inner.execute(context)
        except PolicyFault:
            raise
        except Exception as exc:
            raise PolicyFault(self.inner, exc) from exc
