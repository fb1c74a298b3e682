"""Export a running certgate as APIOps artifacts; plan and apply an import through the API.

Everything goes through the management API (`ManagementClient`), so an import meets the same
validation as any other write. An import first checks the whole set against itself and the
running configuration (policy references, backend certificates, product links, operations of
operation policies, secrets that must be supplied) and writes nothing when anything is wrong.
Writes go in dependency order; resources absent from the folder are deleted only with
`delete_missing` (as the APIOps publisher deletes only in its "commit" mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from certgate.apiops.layout import SERVICE_POLICY, Artifacts, LayoutError, Specification
from certgate.certs.stored import certificate_path
from certgate.client import ManagementClient
from certgate.management.api_definitions import parse_definition
from certgate.management.arm import merge_patch
from certgate.management.backends import MASK
from certgate.management.errors import ApiError
from certgate.policy.catalog import MemoryCatalog, NamedValue
from certgate.policy.errors import PolicyValidationError
from certgate.policy.formats import to_raw
from certgate.policy.loader import parse_document, parse_fragment

COLLECTIONS = ("namedValues", "certificates", "policyFragments", "backends", "products", "apis")
OVERRIDABLE = frozenset({"namedValues", "policyFragments", "backends", "products", "apis"})
PLACEHOLDER = "placeholder"


# -- export -------------------------------------------------------------------------------------
def export(client: ManagementClient) -> Artifacts:
    """The running configuration as artifacts (secret values are never included)."""
    found = Artifacts()
    _policy(client, found, "policies")
    for collection in COLLECTIONS:
        for item in client.list(collection):
            path = f"{collection}/{item['name']}"
            properties = item["properties"]
            if collection == "policyFragments":
                properties = client.get(path, params={"format": "rawxml"})["properties"]
            elif collection == "certificates":
                properties = {k: v for k, v in properties.items() if v is not None}
            found.add(path, properties)
            if collection == "products":
                _policy(client, found, f"{path}/policies")
                for api in client.list(f"{path}/apis"):
                    found.add(f"{path}/apis/{api['name']}", {})
            elif collection == "apis":
                _export_api(client, found, path)
    return found


def _export_api(client: ManagementClient, found: Artifacts, path: str) -> None:
    exported = client.get(path, params={"export": "true", "format": "openapi"})
    found.specifications[path] = Specification("openapi", exported["value"])
    _policy(client, found, f"{path}/policies")
    for operation in client.list(f"{path}/operations"):
        _policy(client, found, f"{path}/operations/{operation['name']}/policies")


def _policy(client: ManagementClient, found: Artifacts, collection: str) -> None:
    for item in client.list(collection):
        path = f"{collection}/{item['name']}"
        value = client.get(path, params={"format": "rawxml"})["properties"]["value"]
        found.policy(SERVICE_POLICY if collection == "policies" else path, value)


# -- import ------------------------------------------------------------------------------------
@dataclass
class Step:
    action: str  # create | update | unchanged | delete
    path: str
    body: dict | None = None


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def apply_overrides(desired: Artifacts, configuration: Any) -> None:
    """APIOps's publisher configuration: `{namedValues: [{name, properties}], backends: ...}`."""
    if configuration is None:
        return
    if not isinstance(configuration, dict):
        raise LayoutError("the configuration must map sections (namedValues, ...) to lists")
    for section, entries in configuration.items():
        if section not in OVERRIDABLE or not isinstance(entries, list):
            raise LayoutError(f"configuration: unknown section '{section}' or not a list")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("properties"), dict):
                raise LayoutError(f"configuration: {section} entries need name and properties")
            artifact = desired.resources.get(f"{section}/{entry.get('name')}")
            if artifact is None:
                raise LayoutError(
                    f"configuration: {section}/{entry.get('name')} is not in the folder"
                )
            artifact.properties = merge_patch(artifact.properties, entry["properties"])


def plan(desired: Artifacts, current: Artifacts, *, delete_missing: bool = False) -> Plan:
    """What importing `desired` over `current` does, and every reason it must not."""
    result = Plan(notes=[f"not imported (not a certgate kind): {u}" for u in desired.unsupported])
    known = _union(desired, current)
    for path in sorted(desired.resources, key=_rank):
        artifact = desired.resources[path]
        if path.startswith("certificates/"):
            _certificate(result, artifact, current.resources.get(path))
            continue
        problem = _check(path, artifact.properties, desired, current, known)
        if problem:
            result.problems.append(f"{path}: {problem}")
            continue
        body = _body(path, artifact.properties, desired.specifications.get(path))
        before = current.resources.get(path)
        if before is None:
            result.steps.append(Step("create", path, body))
        elif _same(path, artifact.properties, before.properties, desired, current):
            result.steps.append(Step("unchanged", path))
        else:
            result.steps.append(Step("update", path, body))
    if delete_missing:
        gone = [p for p in current.resources if p not in desired.resources]
        for path in sorted(gone, key=_rank, reverse=True):
            if not path.startswith("certificates/"):
                result.steps.append(Step("delete", path))
    return result


def apply(client: ManagementClient, steps: list[Step]) -> None:
    for step in steps:
        if step.action in ("create", "update"):
            client.put(step.path, step.body or {})
        elif step.action == "delete":
            client.delete(step.path)


def _certificate(result: Plan, artifact, before) -> None:
    wanted = artifact.properties.get("thumbprint")
    if before is not None:
        have = before.properties.get("thumbprint")
        if wanted and have and have.upper() != str(wanted).upper():
            result.problems.append(
                f"{artifact.path}: the running certificate has thumbprint {have}, the folder "
                f"says {wanted}; upload the right one first"
            )
        else:
            result.steps.append(Step("unchanged", artifact.path))
        return
    key_vault = artifact.properties.get("keyVault")
    if isinstance(key_vault, dict) and key_vault.get("secretIdentifier"):
        reference = {k: v for k, v in key_vault.items() if k != "lastStatus"}
        body = {"properties": {"keyVault": reference}}
        result.steps.append(Step("create", artifact.path, body))
        return
    result.problems.append(
        f"{artifact.path}: certificate (thumbprint {wanted}, subject "
        f"{artifact.properties.get('subject')}) is not in certgate and artifacts carry no "
        f"secrets: upload it first (certgate cert add {artifact.path.split('/', 1)[1]} --pfx FILE)"
    )


def _check(path: str, props: dict, desired: Artifacts, current: Artifacts, known) -> str | None:
    parts = path.split("/")
    secret = parts[0] == "namedValues" and props.get("secret") and "value" not in props
    if secret and path not in current.resources:
        return "secret value not in artifacts: supply it with --configuration"
    if parts[0] == "backends":
        credentials = props.get("credentials") or {}
        for reference in credentials.get("certificateIds") or []:
            if known.resolve(certificate_path(reference)) is None:
                return f"certificate '{reference}' is neither in the folder nor in certgate"
        if path not in current.resources and MASK in repr(credentials) + repr(props.get("proxy")):
            return "credential values are masked ('*****'): supply them with --configuration"
    link = len(parts) == 4 and parts[0] == "products" and parts[2] == "apis"
    if link and known.resolve(f"apis/{parts[3]}") is None:
        return f"API '{parts[3]}' is neither in the folder nor in certgate"
    if parts[-2:] == ["policies", "policy"] or parts[0] == "policyFragments":
        return _check_policy(path, parts, props, desired, current, known)
    if parts[0] == "apis" and len(parts) == 2 and path in desired.specifications:
        try:
            _operations(desired, path)
        except ApiError as error:
            return f"specification: {error.message}"
    return None


def _check_policy(path, parts, props, desired, current, known) -> str | None:
    owner = "/".join(parts[:-2])
    if owner and len(parts) == 4 and owner not in known.paths:
        return f"'{owner}' is neither in the folder nor in certgate"
    if len(parts) == 6:  # apis/a/operations/o/policies/policy
        api = "/".join(parts[:2])
        source = desired if api in desired.specifications else current
        try:
            operations = _operations(source, api) if api in source.specifications else {}
        except ApiError:
            operations = {}
        if parts[3].lower() not in {name.lower() for name in operations}:
            return f"operation '{parts[3]}' is not in the API's specification"
    try:
        if parts[0] == "policyFragments":
            parse_fragment(props.get("value", ""), known)
        else:
            parse_document(props.get("value", ""), _scope(parts), known)
    except PolicyValidationError as error:
        return str(error)
    return None


def _scope(parts: list[str]) -> str:
    if len(parts) == 2:
        return "global"
    if len(parts) == 6:
        return "operation"
    return "product" if parts[0] == "products" else "api"


def _union(desired: Artifacts, current: Artifacts) -> MemoryCatalog:
    """What policies in the folder may refer to: the folder and the running configuration."""
    resources = {**current.resources, **desired.resources}
    named: dict[str, NamedValue] = {}
    for artifact in resources.values():
        name = artifact.properties.get("displayName")
        if artifact.path.startswith("namedValues/") and isinstance(name, str):
            value = artifact.properties.get("value")
            shown = value if isinstance(value, str) else PLACEHOLDER
            named[name] = (artifact.path.split("/")[1], shown, True)
    fragments = {
        a.path.split("/")[1]: a.properties.get("value", "")
        for a in resources.values()
        if a.path.startswith("policyFragments/")
    }
    thumbprints = {
        str(a.properties.get("thumbprint")): a.path.split("/")[1]
        for a in resources.values()
        if a.path.startswith("certificates/")
    }
    schemas = {
        a.path.split("/")[1]: a.properties
        for a in resources.values()
        if a.path.startswith("schemas/")
    }
    return MemoryCatalog(set(resources), named, fragments, thumbprints, schemas)


def _operations(artifacts: Artifacts, api: str) -> dict:
    spec = artifacts.specifications[api]
    return parse_definition(spec.format, spec.text).operations


def _body(path: str, props: dict, spec: Specification | None) -> dict:
    if spec is not None:
        return {"properties": {**props, "format": spec.format, "value": spec.text}}
    return {"properties": props}


def _same(path: str, wanted: dict, have: dict, desired: Artifacts, current: Artifacts) -> bool:
    if isinstance(wanted.get("value"), str) and (
        path.endswith("policies/policy") or path.startswith("policyFragments/")
    ):
        wanted = {**wanted, "value": to_raw(wanted["value"])}
    if path.startswith("namedValues/") and have.get("secret") and "value" in wanted:
        return False  # a secret value cannot be compared: write it
    if path in desired.specifications or path in current.specifications:
        # an API shows every property it keeps: others (APIM's `type`, `apiType`...) are ignored
        wanted = {key: value for key, value in wanted.items() if key in have}
    if any(have.get(key) != value for key, value in wanted.items()):
        return False
    if path in desired.specifications:
        if path not in current.specifications:
            return False
        return _operations(desired, path) == _operations(current, path)
    return True


# Dependency order: what a resource refers to is written before it.
_ORDER = {
    "namedValues/*": 0,
    "certificates/*": 1,
    "policyFragments/*": 2,
    "backends/*": 3,
    "policies/*": 4,
    "products/*": 5,
    "apis/*": 6,
    "apis/*/policies/*": 7,
    "apis/*/operations/*/policies/*": 8,
    "products/*/policies/*": 9,
    "products/*/apis/*": 10,
}


def _rank(path: str) -> tuple[int, str]:
    parts = path.split("/")
    shape = "/".join(p if i % 2 == 0 else "*" for i, p in enumerate(parts))
    return _ORDER[shape], path
