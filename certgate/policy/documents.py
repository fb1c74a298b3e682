"""Compiled pipelines from a configuration store, for the Snapshot builder.

Each stored document is parsed and compiled once per build; a pipeline per operation then only
composes the already parsed scopes.
"""

from __future__ import annotations

import logging
from typing import Any

from certgate.policy.catalog import StoreCatalog
from certgate.policy.engine import Pipeline, compile_pipeline
from certgate.policy.errors import PolicyRuntimeError, PolicyValidationError
from certgate.policy.loader import PolicyDocument, parse_document
from certgate.policy.registry import Policy

log = logging.getLogger("certgate.policy")


class _Invalid(Policy):
    """Stands for a stored document that no longer validates: every request fails with 500."""

    __slots__ = ("reason",)
    name = "configuration"

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    async def execute(self, context: Any) -> bool | None:
        raise PolicyRuntimeError("PolicyInvalid", self.reason)


class PolicyDocuments:
    """Reads `policies/policy`, `products/{p}/policies/policy`, `apis/{a}/policies/policy` and
    `apis/{a}/operations/{o}/policies/policy` from `store` (anything with `get` and `list`)."""

    def __init__(self, store) -> None:
        self.store = store
        self.catalog = StoreCatalog(store)
        self._documents: dict[str, PolicyDocument | None] = {}

    def document(self, path: str, scope: str) -> PolicyDocument | None:
        """The parsed document at `path`, or None when that scope has none.

        Raises `PolicyValidationError` when a stored document no longer validates (a named value
        or fragment it uses changed).
        """
        if path not in self._documents:
            row = self.store.get(path)
            self._documents[path] = (
                None
                if row is None
                else parse_document(row.properties["value"], scope, self.catalog)
            )
        return self._documents[path]

    def products_of(self, api_id: str) -> list[str]:
        """Ids of the products the API is linked to."""
        return [
            row.path.split("/")[1]
            for row in self.store.list("productApi")
            if row.path.endswith(f"/apis/{api_id}")
        ]

    def _checked(self, path: str, scope: str) -> PolicyDocument | Pipeline | None:
        try:
            return self.document(path, scope)
        except PolicyValidationError as exc:
            log.error("stored policy %s no longer validates: %s", path, exc)
            failing = _Invalid(f"The {scope} policy is invalid: {exc}")
            failing.scope, failing.section = scope, "inbound"
            return Pipeline((failing,), (), (), ())

    def pipeline(
        self, api_id: str, operation_id: str | None, product_id: str | None = None
    ) -> Pipeline:
        """The effective pipeline of one operation; the product scope needs `product_id`.

        A stored document that no longer validates (a named value or fragment it uses changed)
        gives a pipeline failing every request with 500, and an error in the log.
        """
        scopes = [("policies/policy", "global")]
        if product_id is not None:
            scopes.append((f"products/{product_id}/policies/policy", "product"))
        scopes.append((f"apis/{api_id}/policies/policy", "api"))
        if operation_id is not None:
            scopes.append((f"apis/{api_id}/operations/{operation_id}/policies/policy", "operation"))
        docs = []
        for path, scope in scopes:
            doc = self._checked(path, scope)
            if isinstance(doc, Pipeline):
                return doc
            docs.append(doc)
        if product_id is None:
            docs.insert(1, None)
        if operation_id is None:
            docs.append(None)
        return compile_pipeline(*docs)
