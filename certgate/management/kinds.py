"""The resource-kind registry: everything the generic ARM dispatcher needs to serve one kind.

A kind is data plus three hooks; see docs/management.md for how to add one.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from certgate.certs.keyvault.vault import KeyVault
from certgate.config.store import Resource, Store

SERVICE_PATH = "service"


@dataclass
class WriteRequest:
    """What `validate` and action handlers get.

    `properties` is the body's `properties` object; for PATCH it is the current presentation with
    the body merged over it (so read-only fields may be present and must be ignored). `current` is
    the stored row (with its unsealed secrets) or None. `store` is for reading other resources only.
    `key_vault` is the service's vault access (`create_management_app(key_vault=...)`).
    """

    kind: Kind
    path: str
    ids: dict[str, str]
    method: str
    body: dict
    properties: dict
    current: Resource | None
    store: Store
    query: Mapping[str, str]
    key_vault: KeyVault

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class Children:
    """Child resources a write brings along (an API imported with its operations).

    In the parent's write transaction, after the parent, the children of `kind` become exactly
    `items` (path -> validated properties): the ones not listed are deleted, the others written.
    The Snapshot compiler judges the parent and its children as one write: if any of them does
    not compile, none is stored and the revision does not move.
    """

    kind: str
    items: dict[str, dict]


@dataclass
class Validated:
    """What `validate` returns: public properties, secrets to seal, paths this resource uses,
    and the children it brings along (written in order, after it)."""

    properties: dict
    secrets: dict | None = None
    references: Iterable[str] = ()
    children: tuple[Children, ...] = ()


Validate = Callable[[WriteRequest], "Validated | Awaitable[Validated]"]
Action = Callable[[WriteRequest], "Validated | Awaitable[Validated]"]
ListParam = Callable[[Resource, str], bool]


def _present_stored(resource: Resource) -> dict:
    return dict(resource.properties)


@dataclass
class Kind:
    """One resource kind.

    - `name`: the store's kind value (`certificate`); `title` (default: `name` capitalised) prefixes
      error codes such as `CertificateInUse`.
    - `pattern`: relative path with `{param}` ids, e.g. `apis/{apiId}/operations/{operationId}`;
      the empty pattern is the service itself.
    - `filter_fields`: `$filter` fields and their types (`string`, `datetime`, `number`, `bool`);
      `name` is the resource id, others are read from the presented properties (dots for nesting).
    - `list_params`: extra list query parameters, `param -> (resource, value) -> keep?`.
    - `actions`: POST `.../{id}/{action}` handlers; what they return is written like a PUT.
    - `present(resource)` or `present(resource, query)`: the `properties` of responses; the
      two-argument form sees the request's query parameters (e.g. a policy's `?format=`).
    - `linked`: kinds whose resources elsewhere link to this one by name and are deleted with it
      (an API's `products/{p}/apis/{apiId}` links, as in APIM).
    - `link_to`: for a link (`products/{p}/apis/{apiId}`), the collection its own id names
      (`apis`): a new link takes the linked resource's stored spelling of that id.
    - `observe(store)`: read-time properties kept outside the resource rows (a gateway's live
      node status), by resource path; merged over `present`'s output in GET and list answers.
    """

    name: str
    pattern: str
    arm_type: str
    validate: Validate
    present: Callable[..., dict] = _present_stored  # (resource) or (resource, query)
    title: str = ""
    filter_fields: dict[str, str] = field(default_factory=lambda: {"name": "string"})
    list_params: dict[str, ListParam] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    patch: bool = True
    linked: tuple[str, ...] = ()
    link_to: str = ""
    schema: dict | None = None
    description: str = ""
    observe: Callable[[Store], Mapping[str, dict]] | None = None

    def __post_init__(self) -> None:
        self.title = self.title or self.name[:1].upper() + self.name[1:]
        self._segments = self.pattern.split("/") if self.pattern else []
        self.id_names = [s[1:-1] for s in self._segments if s.startswith("{")]
        self._present_takes_query = len(inspect.signature(self.present).parameters) >= 2

    def render(self, resource: Resource, query: Mapping[str, str]) -> dict:
        """The presented properties of `resource` for a request with `query`."""
        if self._present_takes_query:
            return self.present(resource, query)
        return self.present(resource)

    @property
    def collection(self) -> str:
        """The collection pattern (`apis/{apiId}/operations`)."""
        return "/".join(self._segments[:-1])

    def match(self, segments: list[str]) -> tuple[dict[str, str], bool] | None:
        """Matches a relative path; returns the ids and whether it names one item (vs the list)."""
        if not self._segments:
            return ({}, True) if not segments else None
        for is_item, wanted in ((True, self._segments), (False, self._segments[:-1])):
            if len(segments) != len(wanted):
                continue
            ids = {}
            for have, want in zip(segments, wanted, strict=True):
                if want.startswith("{"):
                    ids[want[1:-1]] = have
                elif have.lower() != want.lower():
                    break
            else:
                return ids, is_item
        return None

    def path_for(self, ids: Mapping[str, str]) -> str:
        """The store path for these ids (collection names spelled as in `pattern`)."""
        if not self._segments:
            return SERVICE_PATH
        return "/".join(ids[s[1:-1]] if s.startswith("{") else s for s in self._segments)

    def parent_path(self, ids: Mapping[str, str]) -> str:
        """Store path of the enclosing resource, `""` for a top-level kind."""
        segments = self._segments[:-2]
        return "/".join(ids[s[1:-1]] if s.startswith("{") else s for s in segments)


@dataclass
class Match:
    kind: Kind
    ids: dict[str, str]
    item: bool
    action: str | None = None

    @property
    def path(self) -> str:
        return self.kind.path_for(self.ids)


class KindRegistry:
    """Kinds by name; `find` resolves a relative path to a kind, ids and the action if any."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def register(self, kind: Kind) -> Kind:
        """Adds or replaces (same name) a kind; returns it so modules can keep a handle."""
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> Kind:
        return self._kinds[name]

    def __iter__(self):
        return iter(sorted(self._kinds.values(), key=lambda k: k.pattern))

    def find(self, relative: str) -> Match | None:
        segments = [s for s in relative.split("/") if s] if relative else []
        for kind in self:
            found = kind.match(segments)
            if found:
                return Match(kind, found[0], found[1])
        if segments:
            for kind in self:
                found = kind.match(segments[:-1])
                if found and found[1]:
                    action = _action_name(kind, segments[-1])
                    if action:
                        return Match(kind, found[0], True, action)
        return None


def _action_name(kind: Kind, segment: str) -> str | None:
    for action in kind.actions:
        if action.lower() == segment.lower():
            return action
    return None


registry = KindRegistry()
register = registry.register
