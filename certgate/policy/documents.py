"""Compiled pipelines from a configuration store, for the Snapshot builder.

Each stored document is parsed once and each distinct combination of scopes composed once; both are
kept across builds (`use` switches to the next state of the store). A parsed document is reused
while its row, the rows it references (named values, fragments, certificates, backends) and, when
it has `{{...}}` or fragments, the set of named value names are unchanged; a document that failed
is parsed again when anything it could resolve changed (the catalog generation). So a build after
a small change parses only what it touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from certgate.policy.catalog import StoreCatalog
from certgate.policy.context import Context
from certgate.policy.engine import Pipeline, compile_pipeline
from certgate.policy.errors import PolicyRuntimeError, PolicyValidationError
from certgate.policy.loader import PolicyDocument, parse_document
from certgate.policy.registry import Policy

_FRAGMENTS = "policyFragments/"


@dataclass(slots=True)
class _Invalid(Policy):
    """Stands for a stored document that no longer validates: every request fails with 500."""

    reason: str
    name = "configuration"

    async def execute(self, context: Context) -> bool | int | None:
        raise PolicyRuntimeError("PolicyInvalid", self.reason)


# What a parse depended on: the row's etag, the catalog generation, the named value names
# (None: the document uses none of them)
Version = tuple[str, int, tuple[str, ...] | None]


class _Parsed:
    """One document as parsed against one catalog version: the document or why it failed."""

    __slots__ = ("dependencies", "document", "error", "failing", "version")

    def __init__(
        self,
        version: Version,
        document: PolicyDocument | None,
        error: PolicyValidationError | None,
        scope: str,
    ) -> None:
        self.version, self.document, self.error = version, document, error
        self.dependencies: tuple[tuple[str, str | None], ...] = ()
        self.failing: Pipeline | None = None
        if error is not None:
            failing = _Invalid(
                f"The {scope} policy is invalid: {error}", scope=scope, section="inbound"
            )
            self.failing = Pipeline((failing,), (), (), ())


def _text(row) -> str:
    value = row.properties.get("value")
    if not isinstance(value, str):
        raise PolicyValidationError("The stored policy has no document ('value').")
    return value


class PolicyDocuments:
    """Reads `policies/policy`, `products/{p}/policies/policy`, `apis/{a}/policies/policy` and
    `apis/{a}/operations/{o}/policies/policy` from `store` (anything with `get` and `list`)."""

    def __init__(self, store) -> None:
        self._parsed: dict[str, _Parsed] = {}
        self._composed: dict[tuple[int, ...], tuple[tuple, Pipeline]] = {}
        self._used_parsed: dict[str, _Parsed] = {}
        self._used_composed: dict[tuple[int, ...], tuple[tuple, Pipeline]] = {}
        self.parses = 0  # documents parsed so far (a build after a small change parses few)
        self.use(store)

    def use(self, store, generation: int = 0) -> None:
        """Reads `store` from now on. `generation` moves whenever any named value, fragment,
        certificate or backend changed (documents that failed are parsed again then). Entries the
        previous state used and this one does not are dropped at `sweep`."""
        self.store = store
        self.catalog = StoreCatalog(store)
        self._generation = generation
        self._names = tuple(
            sorted(str(r.properties.get("displayName")) for r in store.list("namedValue"))
        )

    def entry(self, path: str) -> object | None:
        """What the document at `path` was parsed into since the last `sweep` (None: none), an
        object that is the same for as long as the document is not parsed again."""
        return self._used_parsed.get(path)

    def _fresh(self, entry: _Parsed, etag: str) -> bool:
        if entry.version[0] != etag:
            return False
        if entry.error is not None:
            return entry.version[1] == self._generation
        names = entry.version[2]
        return (names is None or names == self._names) and all(
            self._etag(path) == seen for path, seen in entry.dependencies
        )

    def _etag(self, path: str) -> str | None:
        row = self.store.get(path)
        return None if row is None else row.etag

    def sweep(self) -> None:
        """Forgets what the current state did not use (deleted or replaced resources)."""
        self._parsed, self._used_parsed = self._used_parsed, {}
        self._composed, self._used_composed = self._used_composed, {}

    def invalid(self) -> list[tuple[str, PolicyValidationError]]:
        """The documents used since the last `sweep` that no longer validate, with the reason."""
        return [(path, p.error) for path, p in self._used_parsed.items() if p.error is not None]

    def _entry(self, path: str, scope: str) -> _Parsed | None:
        row = self.store.get(path)
        if row is None:
            return None
        entry = self._used_parsed.get(path) or self._parsed.get(path)
        if entry is None or not self._fresh(entry, row.etag):
            self.parses += 1
            version: Version = (row.etag, self._generation, self._names)
            try:
                text = _text(row)
                document = parse_document(text, scope, self.catalog)
                references = sorted(document.references)
                if "{{" not in text and not any(p.startswith(_FRAGMENTS) for p in references):
                    version = (row.etag, self._generation, None)  # no name can change its meaning
                entry = _Parsed(version, document, None, scope)
                entry.dependencies = tuple((p, self._etag(p)) for p in references)
            except PolicyValidationError as exc:
                entry = _Parsed(version, None, exc, scope)
            except Exception as exc:  # a row no certgate version wrote must not stop the others
                error = PolicyValidationError(f"The stored document cannot be compiled: {exc!r}")
                entry = _Parsed(version, None, error, scope)
        self._used_parsed[path] = entry
        return entry

    def document(self, path: str, scope: str) -> PolicyDocument | None:
        """The parsed document at `path`, or None when that scope has none.

        Raises `PolicyValidationError` when a stored document no longer validates (a named value
        or fragment it uses changed).
        """
        entry = self._entry(path, scope)
        if entry is None:
            return None
        if entry.error is not None:
            raise entry.error
        return entry.document

    def products_of(self, api_id: str) -> list[str]:
        """Ids of the products the API is linked to."""
        return [
            row.path.split("/")[1]
            for row in self.store.list("productApi")
            if row.path.endswith(f"/apis/{api_id}")
        ]

    def pipeline(
        self, api_id: str, operation_id: str | None, product_id: str | None = None
    ) -> Pipeline:
        """The effective pipeline of one operation; the product scope needs `product_id`.

        A stored document that no longer validates (a named value or fragment it uses changed)
        gives a pipeline failing every request with 500 (and is listed by `invalid`).
        """
        scopes = [("policies/policy", "global")]
        if product_id is not None:
            scopes.append((f"products/{product_id}/policies/policy", "product"))
        scopes.append((f"apis/{api_id}/policies/policy", "api"))
        if operation_id is not None:
            scopes.append((f"apis/{api_id}/operations/{operation_id}/policies/policy", "operation"))
        docs: list[PolicyDocument | None] = []
        for path, scope in scopes:
            entry = self._entry(path, scope)
            if entry is not None and entry.failing is not None:
                return entry.failing
            docs.append(None if entry is None else entry.document)
        if product_id is None:
            docs.insert(1, None)
        if operation_id is None:
            docs.append(None)
        return self._compose(tuple(docs))

    def _compose(self, docs: tuple) -> Pipeline:
        # The documents themselves stay in the entry, so the ids in the key cannot be reused.
        key = tuple(id(d) for d in docs)
        found = self._used_composed.get(key) or self._composed.get(key)
        if found is None:
            found = (docs, compile_pipeline(*docs))
        self._used_composed[key] = found
        return found[1]
