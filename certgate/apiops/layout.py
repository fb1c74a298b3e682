"""The APIOps folder layout (Azure/apiops extractor and publisher), read and written.

```
policy.xml                                         service (global) policy
named values/<id>/namedValueInformation.json
policy fragments/<id>/policyFragmentInformation.json, policy.xml
backends/<id>/backendInformation.json
products/<id>/productInformation.json, policy.xml, apis/<apiId>/productApiInformation.json
apis/<id>/apiInformation.json, specification.yaml|json, policy.xml,
         operations/<operationId>/policy.xml
certificates/<id>/certificateInformation.json      certgate extension: metadata only
```
Information files are `{"properties": {...}}` as the management API shows them. Folders for kinds
certgate does not have (gateways, groups, tags, version sets, loggers, diagnostics, subscriptions,
workspaces...), APIs whose `type` is not `http` (SOAP, GraphQL, WebSocket) and product links to
them are listed in `Artifacts.unsupported`, not read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_POLICY = "policies/policy"
NAMED_VALUES = "named values"
FRAGMENTS = "policy fragments"
INFORMATION = {
    "namedValues": (NAMED_VALUES, "namedValueInformation.json"),
    "policyFragments": (FRAGMENTS, "policyFragmentInformation.json"),
    "backends": ("backends", "backendInformation.json"),
    "certificates": ("certificates", "certificateInformation.json"),
    "products": ("products", "productInformation.json"),
    "apis": ("apis", "apiInformation.json"),
}
FOLDERS = {folder: collection for collection, (folder, _) in INFORMATION.items()}
SPECIFICATIONS = {"specification.yaml": "openapi", "specification.json": "openapi+json"}
KNOWN_API_ENTRIES = {"apiInformation.json", "policy.xml", "operations", *SPECIFICATIONS}
KNOWN_PRODUCT_ENTRIES = {"productInformation.json", "policy.xml", "apis"}


@dataclass
class Artifact:
    """One resource at its management path (`apis/a`, `apis/a/policies/policy`...)."""

    path: str
    properties: dict = field(default_factory=dict)


@dataclass
class Specification:
    format: str  # 'openapi' (YAML) or 'openapi+json'
    text: str


@dataclass
class Artifacts:
    """A whole configuration: resources by path, API specifications, what was not read."""

    resources: dict[str, Artifact] = field(default_factory=dict)
    specifications: dict[str, Specification] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)

    def add(self, path: str, properties: dict) -> None:
        self.resources[path] = Artifact(path, properties)

    def policy(self, path: str, xml: str) -> None:
        self.add(path, {"format": "rawxml", "value": xml})


def read_folder(root: Path) -> Artifacts:
    """The artifacts under `root`; a file that is not JSON is an error naming the file."""
    if not root.is_dir():
        raise LayoutError(f"{root} is not a directory")
    found = Artifacts()
    if (root / "policy.xml").is_file():
        found.policy(SERVICE_POLICY, _text(root / "policy.xml"))
    for entry in sorted(root.iterdir()):
        if entry.name == "policy.xml" or entry.name.startswith("."):
            continue
        if entry.name not in FOLDERS or not entry.is_dir():
            found.unsupported.append(entry.name)
            continue
        collection = FOLDERS[entry.name]
        information = INFORMATION[collection][1]
        for item in sorted(p for p in entry.iterdir() if p.is_dir()):
            path = f"{collection}/{item.name}"
            properties = _properties(item / information)
            api_type = properties.get("type") or properties.get("apiType") or "http"
            if collection == "apis" and str(api_type).lower() != "http":
                found.unsupported.append(f"apis/{item.name} (type {api_type})")
                continue
            found.add(path, properties)
            if collection == "policyFragments":
                found.resources[path].properties.update(
                    format="rawxml", value=_text(item / "policy.xml")
                )
            elif collection == "products":
                _read_product(found, item, path)
            elif collection == "apis":
                _read_api(found, item, path)
    for path in [p for p in found.resources if _links_missing_api(found, p)]:
        if any(u.startswith(f"apis/{path.split('/')[3]} ") for u in found.unsupported):
            del found.resources[path]  # a link to an API of a type certgate does not have
            found.unsupported.append(path)
    return found


def _links_missing_api(found: Artifacts, path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 4 and parts[0] == "products" and f"apis/{parts[3]}" not in found.resources


def _read_product(found: Artifacts, folder: Path, path: str) -> None:
    if (folder / "policy.xml").is_file():
        found.policy(f"{path}/policies/policy", _text(folder / "policy.xml"))
    for api in sorted(p for p in (folder / "apis").glob("*") if p.is_dir()):
        found.add(f"{path}/apis/{api.name}", {})
    found.unsupported += [
        f"{folder.parent.name}/{folder.name}/{p.name}"
        for p in sorted(folder.iterdir())
        if p.name not in KNOWN_PRODUCT_ENTRIES
    ]


def _read_api(found: Artifacts, folder: Path, path: str) -> None:
    for name, fmt in SPECIFICATIONS.items():
        if (folder / name).is_file():
            found.specifications[path] = Specification(fmt, _text(folder / name))
    if (folder / "policy.xml").is_file():
        found.policy(f"{path}/policies/policy", _text(folder / "policy.xml"))
    for operation in sorted(p for p in (folder / "operations").glob("*") if p.is_dir()):
        if (operation / "policy.xml").is_file():
            found.policy(
                f"{path}/operations/{operation.name}/policies/policy",
                _text(operation / "policy.xml"),
            )
    found.unsupported += [
        f"apis/{folder.name}/{p.name}"
        for p in sorted(folder.iterdir())
        if p.name not in KNOWN_API_ENTRIES
    ]


def write_folder(root: Path, artifacts: Artifacts) -> list[Path]:
    """Writes every artifact under `root` (created if needed); returns the files written."""
    written: list[Path] = []

    def put(relative: Path, content: str) -> None:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        written.append(target)

    for path, artifact in sorted(artifacts.resources.items()):
        parts = path.split("/")
        if path == SERVICE_POLICY:
            put(Path("policy.xml"), artifact.properties["value"])
        elif parts[-2:] == ["policies", "policy"]:
            put(_folder(parts[:-2]) / "policy.xml", artifact.properties["value"])
        elif len(parts) == 4 and parts[0] == "products":
            put(_folder(parts) / "productApiInformation.json", "{}\n")
        elif parts[0] == "policyFragments":
            info = {k: v for k, v in artifact.properties.items() if k not in ("format", "value")}
            put(_folder(parts) / INFORMATION[parts[0]][1], _json({"properties": info}))
            put(_folder(parts) / "policy.xml", artifact.properties["value"])
        else:
            put(
                _folder(parts) / INFORMATION[parts[0]][1],
                _json({"properties": artifact.properties}),
            )
    for path, spec in sorted(artifacts.specifications.items()):
        name = next(n for n, f in SPECIFICATIONS.items() if f == spec.format)
        put(_folder(path.split("/")) / name, spec.text)
    return written


def _folder(parts: list[str]) -> Path:
    """Management path segments -> folder (`namedValues/x` -> `named values/x`)."""
    first = INFORMATION[parts[0]][0] if parts[0] in INFORMATION else parts[0]
    return Path(first, *parts[1:])


def _json(value: dict) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LayoutError(f"{path}: {error}") from None


def _properties(path: Path) -> dict:
    try:
        document = json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise LayoutError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    properties = document.get("properties", {}) if isinstance(document, dict) else None
    if not isinstance(properties, dict):
        raise LayoutError(f"{path}: must be an object with a 'properties' object")
    return properties


class LayoutError(Exception):
    """The folder cannot be read as APIOps artifacts; the message names the file."""
