"""What a policy document may refer to, as seen when it is saved or compiled.

The store (or the Snapshot builder) passes an object with this protocol to parsing:

- `resolve(path) -> str | None`: the stored path that `certificates/ID`, `backends/ID`,
  `policyFragments/ID` or `schemas/ID` designates (ARM names are case-insensitive: `MyBackend`
  designates `backends/mybackend`); None when there is none. The methods below take stored ids.
- `named_value(display_name) -> tuple | None`: the named value's `(id, value)` or
  `(id, value, secret)`; without the flag the value is treated as secret (redacted from errors).
- `fragment(fragment_id) -> str | None`: the policy fragment's XML.
- `certificate_id_by_thumbprint(thumbprint) -> str | None`: the id of a stored certificate.
- `has_private_key(certificate_id) -> bool`: whether that stored certificate holds its key
  (validate-jwt's `decryption-keys` need it).
- `schema(schema_id) -> dict | None`: the properties of service schema `schemas/{schema_id}`
  (`schemaType`, `document` or `value`), which `validate-content schema-id` compiles.
"""

from __future__ import annotations

from typing import Protocol

from certgate.armnames import stored_name

# a named value's (id, value), or (id, value, secret): see named_value above
NamedValue = tuple[str, str] | tuple[str, str, bool]


class Catalog(Protocol):
    def resolve(self, path: str) -> str | None: ...

    def named_value(self, display_name: str) -> NamedValue | None: ...

    def fragment(self, fragment_id: str) -> str | None: ...

    def certificate_id_by_thumbprint(self, thumbprint: str) -> str | None: ...

    def has_private_key(self, certificate_id: str) -> bool: ...

    def schema(self, schema_id: str) -> dict | None: ...


class MemoryCatalog:
    """A catalog held in dicts (tests, and callers that already have everything loaded)."""

    def __init__(
        self,
        paths: set[str] | None = None,
        named_values: dict[str, NamedValue] | None = None,
        fragments: dict[str, str] | None = None,
        thumbprints: dict[str, str] | None = None,
        schemas: dict[str, dict] | None = None,
        keyless: set[str] | None = None,
    ) -> None:
        self.paths = paths or set()
        self.keyless = keyless or set()  # ids of certificates stored without their private key
        self.named_values = named_values or {}
        self.fragments = fragments or {}
        self.thumbprints = {k.upper(): v for k, v in (thumbprints or {}).items()}
        self.schemas = schemas or {}

    def resolve(self, path: str) -> str | None:
        known = [
            *self.paths,
            *(f"policyFragments/{name}" for name in self.fragments),
            *(f"schemas/{name}" for name in self.schemas),
        ]
        collection, _, name = path.rpartition("/")
        prefix = collection + "/"
        found = stored_name(name, (p[len(prefix) :] for p in known if p.startswith(prefix)))
        return None if found is None else prefix + found

    def named_value(self, display_name: str) -> NamedValue | None:
        return self.named_values.get(display_name)

    def fragment(self, fragment_id: str) -> str | None:
        return self.fragments.get(fragment_id)

    def certificate_id_by_thumbprint(self, thumbprint: str) -> str | None:
        return self.thumbprints.get(thumbprint.upper())

    def has_private_key(self, certificate_id: str) -> bool:
        return certificate_id not in self.keyless

    def schema(self, schema_id: str) -> dict | None:
        return self.schemas.get(schema_id)


class PlaceholderCatalog:
    """Everything exists; named values become a placeholder (conformance runs over the corpus)."""

    def resolve(self, path: str) -> str | None:
        return path

    def named_value(self, display_name: str) -> tuple[str, str] | None:
        return display_name, "placeholder"

    def fragment(self, fragment_id: str) -> str | None:
        return "<fragment></fragment>"

    def certificate_id_by_thumbprint(self, thumbprint: str) -> str | None:
        return thumbprint

    def has_private_key(self, certificate_id: str) -> bool:
        return True

    def schema(self, schema_id: str) -> dict | None:
        return {"schemaType": "json", "document": {}}


class StoreCatalog:
    """The catalog of a configuration store (anything with `get(path)`, `canonical(path)` and
    `list(kind)`).

    Named values are matched by `displayName`; a secret value comes from the row's secrets.
    """

    def __init__(self, store) -> None:
        self.store = store
        self._named: dict[str, tuple[str, str, bool]] | None = None
        self._thumbprints: dict[str, str] | None = None

    def resolve(self, path: str) -> str | None:
        return self.store.canonical(path)

    def named_value(self, display_name: str) -> tuple[str, str, bool] | None:
        if self._named is None:
            self._named = {}
            for row in self.store.list("namedValue"):
                secret = "value" in row.secrets
                value = row.secrets.get("value", row.properties.get("value"))
                name = row.properties.get("displayName", row.name)
                self._named[name] = (row.name, value or "", secret)
        return self._named.get(display_name)

    def fragment(self, fragment_id: str) -> str | None:
        row = self.store.get(f"policyFragments/{fragment_id}")
        return None if row is None else row.properties.get("value")

    def certificate_id_by_thumbprint(self, thumbprint: str) -> str | None:
        if self._thumbprints is None:
            self._thumbprints = {
                str(row.properties.get("thumbprint", "")).upper(): row.name
                for row in self.store.list("certificate")
            }
        return self._thumbprints.get(thumbprint.upper())

    def has_private_key(self, certificate_id: str) -> bool:
        row = self.store.get(f"certificates/{certificate_id}")
        return row is not None and row.properties.get("hasPrivateKey") is not False

    def schema(self, schema_id: str) -> dict | None:
        row = self.store.get(f"schemas/{schema_id}")
        return None if row is None else dict(row.properties)
